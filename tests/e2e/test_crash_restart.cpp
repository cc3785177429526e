// A daemon that crashes, and one that has long work to do, against the real
// daemon: nothing its predecessor stopped stays stopped, and the watchdog
// keeps hearing from the loop while processes take their time to die.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "act/process.h"
#include "cpu_throttle.h"
#include "e2e_fixture.h"
#include "notify_socket.h"
#include "../time_scale.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

char state_of(uint32_t pid) {
  auto st = fp::read_proc_stat(pid_t(pid));
  return st ? st->state : '?';
}

uint64_t cpu_ticks_of(uint32_t pid) {
  auto st = fp::read_proc_stat(pid_t(pid));
  return st ? st->cpu_ticks : 0;
}

// Socket, lock and state apart, as under systemd: /run/faultprobe (emptied
// when the unit restarts) and /var/lib/faultprobe (kept).
std::string split_dirs_config(const std::string& dir, const std::string& body) {
  return body + "\n[daemon]\nsocket = \"" + dir + "/run/faultprobe.sock\"\nlock_path = \"" + dir +
         "/run/faultprobed.lock\"\nstate_dir = \"" + dir + "/state\"\nlog_dir = \"" + dir +
         "/logs\"\npin_dir = \"\"\nthrottle_backend = \"signal\"\n";
}

}  // namespace

// The SIGSTOP/SIGCONT duty cycle has the hog stopped 80 % of the time. The
// daemon dies by SIGKILL in a stop phase and systemd empties its runtime
// directory; the next daemon finds the throttle in its state directory,
// continues the hog (and takes the throttle over), and a clean stop leaves
// it running.
TEST(CrashRestart, KillNineMidSigstopAndAWipedRuntimeDirLeaveNothingStopped) {
  const std::string dir = temp_dir();
  fs::create_directories(dir + "/run");
  // A low threshold: the hog shares two CPUs with whatever else runs.
  Daemon d(split_dirs_config(dir, kBase + R"(
[rules.cpu_runaway]
threshold = 0.3
resolve = 0.1
for = "2s"

[[policy]]
name = "hogs"
match = { comm = "fg-cpu" }
on.cpu_runaway = ["throttle:cpu=20%"]
cooldown = "120s"
)"));
  ASSERT_TRUE(d.ready());
  FaultGen g({"cpu", "--duration", "90s"});
  ASSERT_TRUE(g.started());
  const uint32_t pid = g.culprit();
  ASSERT_TRUE(wait_cpu_throttled(d, pid, fp::test::scaled(40s), fp::test::scaled(10s)));
  ASSERT_TRUE(wait_for([&] { return state_of(pid) == 'T'; }, fp::test::scaled(5s))) << "never in a stop phase";

  d.kill9();
  ASSERT_EQ(state_of(pid), 'T');
  // Nobody continues it: a whole duty period later it is still stopped.
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(state_of(pid), 'T') << "continued without a daemon?";
  EXPECT_TRUE(fs::exists(dir + "/state/throttles.json"));

  fs::remove_all(dir + "/run");  // what systemd does to RuntimeDirectory= on a restart
  fs::create_directories(dir + "/run");
  const size_t log_from = d.log().size();
  ASSERT_TRUE(d.restart()) << d.log();
  const std::string log = d.log().substr(log_from);
  EXPECT_NE(log.find("pid " + std::to_string(pid) + " is still throttled (from a previous run)"), std::string::npos)
      << log;
  // It runs again (the new duty cycle starts with a run phase).
  const uint64_t t0 = cpu_ticks_of(pid);
  EXPECT_TRUE(wait_for([&] { return cpu_ticks_of(pid) > t0 + 2; }, fp::test::scaled(5s)))
      << "still stopped after the restart (state " << state_of(pid) << ")\n" << log;

  // A clean stop undoes the throttle: the hog is left running, not stopped.
  EXPECT_EQ(d.stop(), 0) << d.log();
  EXPECT_TRUE(wait_for([&] { return state_of(pid) != 'T'; }, fp::test::scaled(2s))) << d.log();
  const uint64_t t1 = cpu_ticks_of(pid);
  EXPECT_TRUE(wait_for([&] { return cpu_ticks_of(pid) > t1 + 5; }, fp::test::scaled(5s)));
  g.stop();
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}

namespace {

// Processes running `exe` (our copy of the shell): the test's, and the
// daemon's respawns of them.
std::vector<pid_t> running(const std::string& exe) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec;
    if (fs::read_symlink(e.path() / "exe", ec) == exe) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace

// Six processes that ignore SIGTERM under a restart policy: each restart
// waits out its grace (5 s) before SIGKILL. The loop must go on meanwhile,
// and the watchdog (WATCHDOG_USEC = 3 s: a ping every 1.5 s) never go quiet.
TEST(CrashRestart, WatchdogKeepsBeingPingedWhileSixProcessesIgnoreSigterm) {
  const std::string dir = temp_dir();
  // A shell of our own name, so the policy can only ever match these.
  const std::string shell = dir + "/fp-wdsh";
  fs::copy_file("/bin/dash", shell);
  fs::permissions(shell, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
  NotifySocket notify(dir + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  setenv("NOTIFY_SOCKET", (dir + "/notify.sock").c_str(), 1);
  setenv("WATCHDOG_USEC", "3000000", 1);
  Daemon d(kBase + R"(
[[rule]]
name = "wd-busy"
class = "cpu_runaway"
match = { comm = "fp-wdsh" }
threshold = 0.05
resolve = 0.01
for = "1s"

[[policy]]
name = "wd"
match = { comm = "fp-wdsh" }
on.cpu_runaway = ["restart"]
cooldown = "120s"
recovery_window = "30s"
)");
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  ASSERT_TRUE(d.ready());

  // Busy a tenth of the time or more, and deaf to SIGTERM.
  const std::string script = "trap '' TERM; while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.1; done";
  std::vector<pid_t> started;
  for (int i = 0; i < 6; ++i) started.push_back(spawn({shell, "-c", script}, -1, -1));
  auto restarts = [&] {
    size_t n = 0;
    for (const auto& r : d.records())
      for (pid_t p : started)
        if (is_action(r, "restart", "ok", uint32_t(p))) ++n;
    return n;
  };
  const bool all_restarted = wait_for([&] { return restarts() == 6; }, fp::test::scaled(30s));
  const auto first_restart = steady::now();
  // Every grace runs out (5 s), SIGKILL, respawn: six of them.
  auto respawned = [&] {
    size_t n = 0;
    const std::string log = d.log();
    for (size_t at = 0; (at = log.find("is gone; respawned " + shell, at)) != std::string::npos; ++at) ++n;
    return n;
  };
  const bool all_respawned = all_restarted && wait_for([&] { return respawned() >= 6; }, fp::test::scaled(20s));
  const auto end = steady::now();
  const std::string log = d.log();
  const auto records = d.records();
  d.stop();
  for (int round = 0; round < 50 && !running(shell).empty(); ++round) {
    for (pid_t p : running(shell)) kill(p, SIGKILL);
    std::this_thread::sleep_for(20ms);
  }
  for (pid_t p : started) waitpid(p, nullptr, 0);

  ASSERT_TRUE(all_restarted) << restarts() << " of 6 restarted\n" << describe(records) << log;
  EXPECT_TRUE(all_respawned) << respawned() << " of 6 respawned\n" << log;
  EXPECT_NE(log.find("ignored SIGTERM for 5000 ms; SIGKILL"), std::string::npos) << log;
  // The pings from a little before the first restart to the end.
  std::vector<steady::time_point> pings = notify.pings();
  ASSERT_GE(pings.size(), 3u) << "no watchdog pings at all\n" << log;
  std::chrono::milliseconds longest{0};
  for (size_t i = 1; i < pings.size(); ++i) {
    if (pings[i] < first_restart - 2s || pings[i - 1] > end) continue;
    longest = std::max(longest, std::chrono::duration_cast<std::chrono::milliseconds>(pings[i] - pings[i - 1]));
  }
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(end - pings.back());
  std::printf("watchdog: %zu pings, longest gap %lld ms while six processes ignored SIGTERM\n", pings.size(),
              static_cast<long long>(longest.count()));
  EXPECT_LT(longest, 3000ms) << "the watchdog went quiet: systemd would have killed the daemon\n" << log;
  EXPECT_LT(since, 3000ms);
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}
