// Application checkpoints (newest complete one), CRIU against a fake command
// runner, and the real command runner.
#include "act/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

namespace fp {
namespace {

namespace fs = std::filesystem;

struct CkptTempDir {
  fs::path path;
  CkptTempDir() {
    char tmpl[] = "/tmp/fp-ckpt-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~CkptTempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A file (or directory) with an mtime `age_s` seconds after a fixed base.
void make(const fs::path& p, int age_s, bool dir = false) {
  if (dir)
    fs::create_directory(p);
  else
    std::ofstream(p) << "x";
  static const auto base = fs::file_time_type::clock::now() - std::chrono::hours(1);
  fs::last_write_time(p, base + std::chrono::seconds(age_s));
}

TEST(NewestCompleteCheckpoint, PicksTheNewestCompleteByMtime) {
  CkptTempDir d;
  make(d.path / "ckpt-a", 10);
  make(d.path / "ckpt-b", 20);
  make(d.path / "ckpt-c", 15);
  EXPECT_EQ(newest_complete_checkpoint(d.path), (d.path / "ckpt-b").string());
  // In-progress, hidden and editor files are never complete, however new.
  make(d.path / "ckpt-d.tmp", 100);
  make(d.path / "ckpt-e.partial", 100);
  make(d.path / "ckpt-f~", 100);
  make(d.path / ".ckpt-g", 100);
  fs::create_symlink(d.path / "ckpt-a", d.path / "latest");
  ASSERT_EQ(mkfifo((d.path / "fifo").c_str(), 0600), 0);
  EXPECT_EQ(newest_complete_checkpoint(d.path), (d.path / "ckpt-b").string());
  // A directory is a checkpoint too.
  make(d.path / "snapshot-9", 50, /*dir=*/true);
  EXPECT_EQ(newest_complete_checkpoint(d.path), (d.path / "snapshot-9").string());
}

TEST(NewestCompleteCheckpoint, EqualMtimesGoByName) {
  CkptTempDir d;
  make(d.path / "ckpt-0002", 10);
  make(d.path / "ckpt-0010", 10);
  make(d.path / "ckpt-0001", 10);
  EXPECT_EQ(newest_complete_checkpoint(d.path), (d.path / "ckpt-0010").string());
}

TEST(NewestCompleteCheckpoint, EmptyOrMissingDirectoryHasNone) {
  CkptTempDir d;
  EXPECT_FALSE(newest_complete_checkpoint(d.path));
  make(d.path / "only.tmp", 1);
  EXPECT_FALSE(newest_complete_checkpoint(d.path));
  EXPECT_FALSE(newest_complete_checkpoint((d.path / "missing").string()));
}

// ---- CRIU with a fake runner ----

struct FakeRunner {
  struct Call {
    std::vector<std::string> argv;
  };
  std::vector<Call> calls;
  std::function<Result<int>(const std::vector<std::string>&, std::string*)> respond;
  CommandRunnerFn fn() {
    return [this](const std::vector<std::string>& argv, std::chrono::milliseconds, std::string* out) {
      calls.push_back({argv});
      return respond(argv, out);
    };
  }
};

// What `criu check` printed on Debian 12's CRIU 3.17 under kernel 6.18.
const char* kVdsoFailure =
    "Error (criu/util.c:642): exited, status=1\n"
    "Error (criu/util.c:642): exited, status=1\n"
    "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n"
    "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n"
    "Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n"
    "Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";

TEST(CriuProbe, MissingBinaryIsNotInstalled) {
  FakeRunner r;
  r.respond = [](const auto&, std::string*) -> Result<int> { return Error{ENOENT, "cannot run criu: No such file"}; };
  CriuStatus st = CriuBackend::probe(r.fn());
  EXPECT_FALSE(st.available);
  EXPECT_EQ(st.reason, "criu not installed");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].argv, (std::vector<std::string>{"criu", "--version"}));
}

TEST(CriuProbe, FailingCheckGivesTheCauseAsReason) {
  FakeRunner r;
  r.respond = [](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    if (argv[1] == "--version") {
      *out = "Version: 3.17.1\n";
      return 0;
    }
    *out = kVdsoFailure;
    return 1;
  };
  CriuStatus st = CriuBackend::probe(r.fn());
  EXPECT_FALSE(st.available);
  EXPECT_EQ(st.version, "3.17.1");
  EXPECT_EQ(st.reason.rfind("criu check failed: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds", 0),
            0u)
      << st.reason;
  EXPECT_NE(st.reason.find("4.1"), std::string::npos) << st.reason;
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[1].argv, (std::vector<std::string>{"criu", "check"}));
}

TEST(CriuProbe, PassingCheckIsAvailable) {
  FakeRunner r;
  r.respond = [](const std::vector<std::string>& argv, std::string* out) -> Result<int> {
    *out = argv[1] == "--version" ? "Version: 4.1\nGitID: v4.1\n" : "Looks good.\n";
    return 0;
  };
  CriuBackend criu(r.fn());
  EXPECT_FALSE(criu.status().available);  // not probed yet
  const CriuStatus& st = criu.probe();
  EXPECT_TRUE(st.available);
  EXPECT_EQ(st.version, "4.1");
  EXPECT_EQ(st.reason, "");
}

// A fake `criu dump` that leaves an image file in -D's directory.
Result<int> fake_dump(const std::vector<std::string>& argv, std::string*) {
  auto at = std::find(argv.begin(), argv.end(), "-D");
  if (at == argv.end() || ++at == argv.end()) return 2;
  if (!fs::is_directory(*at)) return 3;  // criu needs the directory to exist
  std::ofstream(fs::path(*at) / "core-1.img") << "img";
  return 0;
}

TEST(CriuDump, WritesNumberedImagesAndKeepsTheNewest) {
  CkptTempDir d;
  const std::string root = (d.path / "images").string();
  FakeRunner r;
  r.respond = fake_dump;
  CriuBackend criu(r.fn());
  for (int i = 1; i <= 5; ++i) {
    auto res = criu.dump(4242, root, 3);
    ASSERT_TRUE(res.ok()) << res.error().message;
    EXPECT_EQ(*res, root + "/00000" + std::to_string(i));
  }
  EXPECT_EQ(r.calls[0].argv, (std::vector<std::string>{"criu", "dump", "-t", "4242", "-D", root + "/000001.tmp",
                                                       "--leave-running", "--shell-job", "-o", "dump.log"}));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"000003", "000004", "000005"}));
  EXPECT_TRUE(fs::exists(fs::path(root) / "000005" / "core-1.img"));
  EXPECT_EQ(CriuBackend::newest_image(root), root + "/000005");
}

TEST(CriuDump, FailureKeepsTheGoodImagesAndSaysWhy) {
  CkptTempDir d;
  const std::string root = (d.path / "images").string();
  FakeRunner r;
  r.respond = fake_dump;
  CriuBackend criu(r.fn());
  ASSERT_TRUE(criu.dump(1, root, 3).ok());
  r.respond = [](const std::vector<std::string>& argv, std::string*) -> Result<int> {
    std::ofstream(fs::path(argv[5]) / "dump.log") << "(00.01) Error (criu/cr-dump.c:1): Can't dump: ptrace denied\n";
    return 1;
  };
  auto res = criu.dump(1, root, 3);
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("ptrace denied"), std::string::npos) << res.error().message;
  EXPECT_FALSE(fs::exists(fs::path(root) / "000002.tmp"));
  EXPECT_EQ(CriuBackend::newest_image(root), root + "/000001");
}

TEST(CriuRestore, ReadsThePidFile) {
  CkptTempDir d;
  FakeRunner r;
  r.respond = [](const std::vector<std::string>& argv, std::string*) -> Result<int> {
    auto at = std::find(argv.begin(), argv.end(), "--pidfile");
    std::ofstream(*(at + 1)) << "31337\n";
    return 0;
  };
  CriuBackend criu(r.fn());
  auto pid = criu.restore(d.path.string());
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  EXPECT_EQ(*pid, 31337);
  const std::string pidfile = (d.path / "restore.pid").string();
  EXPECT_EQ(r.calls[0].argv, (std::vector<std::string>{"criu", "restore", "-D", d.path.string(), "--shell-job", "-d",
                                                       "--pidfile", pidfile, "-o", "restore.log"}));
}

TEST(CriuRestore, FailureOrNoPidIsAnError) {
  CkptTempDir d;
  FakeRunner r;
  r.respond = [](const std::vector<std::string>&, std::string* out) -> Result<int> {
    *out = "Error (criu/cr-restore.c:2): Can't restore: pid 77 is busy\n";
    return 1;
  };
  CriuBackend criu(r.fn());
  auto pid = criu.restore(d.path.string());
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message.find("pid 77 is busy"), std::string::npos) << pid.error().message;

  r.respond = [](const std::vector<std::string>&, std::string*) -> Result<int> { return 0; };  // no pidfile
  pid = criu.restore(d.path.string());
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message.find("no pid"), std::string::npos) << pid.error().message;
}

// ---- the real runner ----

TEST(RunCommand, CapturesOutputAndExitCode) {
  std::string out;
  auto rc = run_command({"sh", "-c", "echo hi; echo err >&2; exit 3"}, std::chrono::seconds(5), &out);
  ASSERT_TRUE(rc.ok()) << rc.error().message;
  EXPECT_EQ(*rc, 3);
  EXPECT_EQ(out, "hi\nerr\n");
}

TEST(RunCommand, MissingProgramAndTimeout) {
  auto rc = run_command({"fp-no-such-program"}, std::chrono::seconds(5), nullptr);
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.error().code, ENOENT);

  const auto t0 = std::chrono::steady_clock::now();
  rc = run_command({"sleep", "10"}, std::chrono::milliseconds(100), nullptr);
  ASSERT_FALSE(rc.ok());
  EXPECT_EQ(rc.error().code, ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
}

}  // namespace
}  // namespace fp
