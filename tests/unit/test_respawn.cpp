// capture_spawn_spec against a fake /proc tree and a real exec'd child, and
// the RespawnRegistry's bound and bookkeeping.
#include "act/respawn.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "act/process.h"

namespace fp {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;  // "a\0b"s keeps the NULs
using Env = std::vector<std::pair<std::string, std::string>>;

std::string real(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) ? buf : "";
}

class RespawnFakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "fp_respawn_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
    root_ = base_ / "proc";
    fs::create_directories(base_ / "work");
    cwd_ = real((base_ / "work").string());
    sleep_ = real("/bin/sleep");
    ASSERT_FALSE(sleep_.empty());
  }
  void TearDown() override { fs::remove_all(base_); }

  // A process with everything a capture reads; tests then break one piece.
  fs::path add(pid_t pid, const std::string& cmdline, uint32_t flags = 0x00400100) {
    fs::path d = root_ / std::to_string(pid);
    fs::create_directories(d);
    std::ofstream(d / "stat") << pid << " (sleep) S 1 " << pid << " " << pid << " 0 -1 " << flags
                              << " 0 0 0 0 0 0 0 0 20 0 1 0 " << ticks(pid) << " 0 0\n";
    std::ofstream(d / "cmdline", std::ios::binary) << cmdline;
    std::ofstream(d / "environ", std::ios::binary) << "PATH=/usr/bin:/bin\0HOME=/root\0A=b=c\0junk\0\0"s;
    std::ofstream(d / "status") << "Name:\tsleep\nUid:\t12345\t0\t0\t0\nGid:\t54321\t0\t0\t0\n";
    fs::create_symlink(sleep_, d / "exe");
    fs::create_symlink(cwd_, d / "cwd");
    return d;
  }
  static uint64_t ticks(pid_t pid) { return 2'000'000 + uint64_t(pid); }
  // Converted once per pid: the conversion reads the clocks, and the registry looks keys up exactly.
  ProcKey key(pid_t pid) {
    auto it = keys_.find(pid);
    if (it == keys_.end()) it = keys_.emplace(pid, ProcKey{uint32_t(pid), start_ticks_to_mono_ns(ticks(pid))}).first;
    return it->second;
  }
  static void relink(const fs::path& link, const std::string& target) {
    fs::remove(link);
    fs::create_symlink(target, link);
  }

  fs::path base_, root_;
  std::string cwd_, sleep_;
  std::map<pid_t, ProcKey> keys_;
};

TEST_F(RespawnFakeProc, CapturesArgvCwdEnvAndIds) {
  add(4242,
      "sleep\0"
      "30\0"
      "\0"
      "x y\0"s);
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  // "sleep" was found through PATH: it resolves the same way, to the running binary.
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/sleep", "30", "", "x y"}));
  EXPECT_EQ(spec->cwd, cwd_);
  EXPECT_EQ(spec->env, (Env{{"PATH", "/usr/bin:/bin"}, {"HOME", "/root"}, {"A", "b=c"}}));
  EXPECT_EQ(spec->uid, 12345u);
  EXPECT_EQ(spec->gid, 54321u);
  EXPECT_EQ(spec->user, "");  // no passwd entry: by ids
  EXPECT_EQ(spec->log_path, "");
}

TEST_F(RespawnFakeProc, RootIsCapturedByName) {
  fs::path d = add(4242,
                   "sleep\0"
                   "1\0"s);
  std::ofstream(d / "status") << "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->user, "root");
  EXPECT_EQ(spec->uid, 0u);
}

TEST_F(RespawnFakeProc, Argv0RelativeToCwdIsKept) {
  fs::create_symlink(sleep_, fs::path(cwd_) / "prog");
  add(4242,
      "./prog\0"
      "5\0"s);
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->argv[0], "./prog");
}

TEST_F(RespawnFakeProc, Argv0ThatIsNotTheBinaryBecomesExe) {
  add(1, "./missing\0"s);
  add(2, "/usr/bin/true\0"s);             // another binary
  add(3, "sshd: user [priv]\0"s);         // a rewritten title
  add(4, "no-such-command-anywhere\0"s);  // not in PATH
  for (pid_t pid : {1, 2, 3, 4}) {
    auto spec = capture_spawn_spec(pid, root_.string());
    ASSERT_TRUE(spec.ok()) << spec.error().message;
    EXPECT_EQ(spec->argv[0], sleep_) << "pid " << pid;
  }
}

TEST_F(RespawnFakeProc, AbsoluteArgv0OfTheBinaryIsKept) {
  add(4242,
      "/bin/sleep\0"
      "1\0"s);  // /bin is a symlink on merged-/usr systems: still the same binary
  auto spec = capture_spawn_spec(4242, root_.string());
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_EQ(spec->argv[0], "/bin/sleep");
}

TEST_F(RespawnFakeProc, RefusesWhatCannotBeRespawned) {
  relink(add(10, "sleep\0"s) / "exe", sleep_ + " (deleted)");
  relink(add(11, "sleep\0"s) / "cwd", cwd_ + " (deleted)");
  add(12, "");                                  // zombie or kernel thread
  add(13, "sleep\0"s, 0x00208040);              // PF_KTHREAD
  fs::remove(add(14, "sleep\0"s) / "environ");  // unreadable
  fs::remove(add(15, "sleep\0"s) / "exe");
  std::ofstream(add(16, "sleep\0"s) / "status") << "Name:\tx\n";

  auto msg = [&](pid_t pid) {
    auto r = capture_spawn_spec(pid, root_.string());
    return r.ok() ? std::string("ok") : r.error().message;
  };
  EXPECT_EQ(msg(10), "the executable of pid 10 was deleted (" + sleep_ + " (deleted)): cannot respawn it");
  EXPECT_NE(msg(11).find("the working directory of pid 11 was deleted"), std::string::npos) << msg(11);
  EXPECT_EQ(msg(12), "pid 12 has no command line (kernel thread or zombie): nothing to respawn");
  EXPECT_EQ(msg(13), "pid 13 is a kernel thread: nothing to respawn");
  EXPECT_EQ(msg(14).rfind("cannot read the environment of pid 14: cannot open ", 0), 0u) << msg(14);
  EXPECT_EQ(msg(15).rfind("cannot read the executable of pid 15: ", 0), 0u) << msg(15);
  EXPECT_NE(msg(16).find("no Uid:/Gid: line"), std::string::npos) << msg(16);
  EXPECT_EQ(msg(17), "pid 17 has exited");
}

TEST_F(RespawnFakeProc, RegistryIsBoundedOldestFirst) {
  for (pid_t pid = 100; pid < 105; ++pid)
    add(pid,
        "sleep\0"
        "1\0"s);
  RespawnRegistry reg(root_.string(), 3);
  for (pid_t pid = 100; pid < 105; ++pid) reg.remember(key(pid));
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_EQ(reg.find(key(100)), nullptr);
  EXPECT_EQ(reg.find(key(101)), nullptr);
  ASSERT_NE(reg.find(key(104)), nullptr);
  EXPECT_EQ(reg.find(key(104))->argv[1], "1");

  reg.remember(key(104));  // known: no second entry
  EXPECT_EQ(reg.size(), 3u);
  reg.forget(key(103));
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_EQ(reg.find(key(103)), nullptr);
  reg.remember(key(100));
  reg.remember(key(101));  // 102 is now the oldest and goes
  EXPECT_EQ(reg.size(), 3u);
  EXPECT_EQ(reg.find(key(102)), nullptr);
  EXPECT_NE(reg.find(key(100)), nullptr);
  EXPECT_NE(reg.find(key(104)), nullptr);
}

TEST_F(RespawnFakeProc, RegistryRemembersFailuresAndSkipsOtherProcesses) {
  add(200, "");
  add(201, "sleep\0"s);
  RespawnRegistry reg(root_.string());
  reg.remember(key(200));
  EXPECT_EQ(reg.find(key(200)), nullptr);
  EXPECT_EQ(reg.failure(key(200)), "pid 200 has no command line (kernel thread or zombie): nothing to respawn");

  ProcKey other = key(201);
  other.start_ns += 1'000'000'000ull;  // the pid belongs to another process now
  reg.remember(other);
  EXPECT_EQ(reg.size(), 1u);
  EXPECT_EQ(reg.failure(other), std::nullopt);
  reg.remember(key(999));  // gone
  EXPECT_EQ(reg.size(), 1u);
}

// ---- a real process ----

TEST(CaptureSpawnSpecReal, RoundTripsAnExecdChild) {
  std::string tmpl = (fs::path(::testing::TempDir()) / "fp_respawn_real_XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = real(tmpl);

  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // so the test can kill the shell and its sleep together
    if (chdir(dir.c_str()) != 0) _exit(120);
    // "sh" is a second name of dash: PATH resolution must keep it (like a busybox applet).
    const char* argv[] = {"sh", "-c", "sleep 30; :", "two words", nullptr};
    const char* envp[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", "EMPTY=", nullptr};
    execve("/bin/sh", const_cast<char**>(argv), const_cast<char**>(envp));
    _exit(127);
  }
  // Wait for the exec to show in /proc.
  const std::string self_exe = real("/proc/self/exe");
  std::string exe;
  for (int i = 0; i < 400; ++i) {
    auto link = read_link_path("/proc/" + std::to_string(pid) + "/exe");
    if (link && *link != self_exe) {
      exe = *link;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (exe.empty()) {
    int status = 0;
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "the child did not exec /bin/sh (wait status " << status << ")";
  }

  // exec switches /proc/PID/exe before the new image's argument pages are
  // set up: until then the command line reads empty.
  auto spec = capture_spawn_spec(pid);
  for (int i = 0; i < 200 && !spec.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    spec = capture_spawn_spec(pid);
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  fs::remove_all(dir);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  ASSERT_EQ(real("/usr/bin/sh"), exe) << "expected /bin/sh to be a link to the shell binary";
  EXPECT_EQ(spec->argv, (std::vector<std::string>{"/usr/bin/sh", "-c", "sleep 30; :", "two words"}));
  EXPECT_EQ(spec->cwd, dir);
  EXPECT_EQ(spec->env, (Env{{"FOO", "bar baz"}, {"PATH", "/usr/bin:/bin"}, {"EMPTY", ""}}));
  EXPECT_EQ(spec->uid, getuid());
  EXPECT_EQ(spec->gid, getgid());
}

}  // namespace
}  // namespace fp
