// Faults of processes the daemon did not see start, with real programs: a
// `dd` already hung in D (writing to a frozen filesystem) when the daemon
// starts, and a multi-threaded python3 whose leader has exited and whose
// worker thread is the one the OOM killer marks.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../time_scale.h"
#include "e2e_fixture.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

char state_of(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// An ext4 image on a loop device, mounted and frozen (fsfreeze): a write to
// it blocks its writer in uninterruptible sleep until thawed.
class FrozenFs {
 public:
  FrozenFs() : dir_(temp_dir()) {
    std::string out;
    if (sh("truncate -s 32M " + dir_ + "/img && mkfs.ext4 -q -F " + dir_ + "/img") != 0) return;
    if (run_capture({"/usr/sbin/losetup", "-f", "--show", dir_ + "/img"}, &out, 10s) != 0) return;
    loop_ = out.substr(0, out.find('\n'));
    fs::create_directory(mnt());
    if (sh("mount " + loop_ + " " + mnt()) != 0) return;
    mounted_ = true;
    frozen_ = sh("fsfreeze -f " + mnt()) == 0;
  }
  ~FrozenFs() {
    thaw();
    if (mounted_) sh("umount " + mnt());
    if (!loop_.empty()) sh("losetup -d " + loop_);
    fs::remove_all(dir_);
  }
  bool ok() const { return frozen_; }
  void thaw() {
    if (frozen_) sh("fsfreeze -u " + mnt());
    frozen_ = false;
  }
  std::string mnt() const { return dir_ + "/mnt"; }

 private:
  std::string dir_, loop_;
  bool mounted_ = false, frozen_ = false;
};

std::string memory_cgroup(const std::string& name, uint64_t limit) {
  std::string cg = fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") ? "/sys/fs/cgroup/memory/" + name
                                                                             : "/sys/fs/cgroup/" + name;
  fs::create_directory(cg);
  bool v1 = fs::exists(cg + "/memory.limit_in_bytes");
  std::ofstream(cg + (v1 ? "/memory.limit_in_bytes" : "/memory.max")) << limit;
  return cg;
}

}  // namespace

// The required scenario: the process is in D before the daemon starts. The
// hang opens naming it, within the rule's threshold of the sleep's real start
// (or at the first sample, if the daemon took longer than that to start), with
// the sleep's whole age in the evidence.
TEST(Preexisting, HangOlderThanTheDaemonOpensNamingIt) {
  FrozenFs frozen;
  ASSERT_TRUE(frozen.ok()) << "cannot set up a frozen ext4 on a loop device";
  const uint64_t started_ns = mono_ns();
  pid_t dd = spawn({"/bin/dd", "if=/dev/zero", "of=" + frozen.mnt() + "/f", "bs=4k", "count=1"}, -1, -1);
  ASSERT_GT(dd, 0);
  ASSERT_TRUE(wait_for([&] { return state_of(dd) == 'D'; }, 5s)) << "dd is not in D: " << state_of(dd);
  ASSERT_TRUE(wait_for([&] { return mono_ns() - started_ns > 1'000'000'000ull; }, 3s));

  constexpr double kThreshold = 3;
  Daemon d(kBase + "[rules.hang]\nthreshold = 3\n");
  ASSERT_TRUE(d.ready());
  const uint64_t ready_ns = mono_ns();
  auto f = d.wait_fault("hang", uint32_t(dd), 10s);
  const uint64_t opened_ns = mono_ns();
  ASSERT_TRUE(f) << describe(d.records()) << "\n" << d.log();
  EXPECT_EQ((*f)["comm"], "dd");
  const double age_at_ready = double(ready_ns - started_ns) / 1e9;
  EXPECT_GE((*f)["evidence"]["dstate_s"].get<double>(), age_at_ready - 0.1) << f->dump();
  const uint64_t due_ns = std::max<uint64_t>(started_ns + uint64_t(kThreshold * 1e9), ready_ns);
  EXPECT_LE(opened_ns, due_ns + uint64_t(fp::test::scaled(2s).count()) * 1'000'000ull)
      << "opened " << double(opened_ns - started_ns) / 1e9 << " s after the sleep began";
  json status = d.query({{"cmd", "status"}});
  EXPECT_EQ(status["status"]["seed"]["method"], "task_iter") << status.dump();

  frozen.thaw();
  int st = 0;
  EXPECT_EQ(waitpid(dd, &st, 0), dd);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "dd status " << st;
  EXPECT_TRUE(d.wait_resolved("hang", uint32_t(dd), 10s)) << describe(d.records());
}

// A multi-threaded victim: python3 whose main thread has exited (so the
// kernel marks the worker thread, not the leader) is the oom_kill culprit.
TEST(Preexisting, MultiThreadedOomVictimIsTheProcess) {
  const std::string cg = memory_cgroup("fp_e2e_oom_mt_" + std::to_string(getpid()), 64u << 20);
  Daemon d(kBase + "[rules.oom_kill]\nclear = \"1s\"\n");
  ASSERT_TRUE(d.ready());
  const std::string script =
      "import ctypes, threading\n"
      "def work():\n"
      "    held = []\n"
      "    while True:\n"
      "        held.append(b'x' * (4 << 20))\n"
      "threading.Thread(target=work).start()\n"
      "ctypes.CDLL(None).pthread_exit(None)\n";
  pid_t py = spawn({"/bin/sh", "-c", "echo $$ > " + cg + "/cgroup.procs && exec python3 -c \"$0\"", script}, -1, -1);
  ASSERT_GT(py, 0);
  auto f = d.wait_fault("oom_kill", uint32_t(py), 30s);
  int st = 0;
  waitpid(py, &st, 0);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "python3 status " << st;
  EXPECT_EQ((*f)["comm"], "python3");
  ASSERT_TRUE((*f)["evidence"].contains("tid")) << "the kernel marked the leader: " << f->dump();
  EXPECT_NE((*f)["evidence"]["tid"], uint32_t(py));
  EXPECT_NE((*f)["evidence"]["tgid_from"], "unresolved") << f->dump();
  EXPECT_TRUE(d.wait_resolved("oom_kill", uint32_t(py), 10s)) << describe(d.records());
  rmdir(cg.c_str());
}
