// SystemdControl with a fake command runner, and the real runner with
// /bin/echo, sh and a timeout on /bin/sleep.
#include "act/systemd.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "fake_command_runner.h"

namespace fp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Argv = std::vector<std::string>;
using test::FakeRunner;

class Systemd : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "fp_systemd_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    run_dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(run_dir_); }
  fs::path run_dir_;
  FakeRunner runner_;
};

TEST_F(Systemd, RestartBuildsTheSystemctlCommand) {
  SystemdControl sd(runner_, run_dir_.string(), 7s);
  EXPECT_TRUE(sd.available());
  auto r = sd.restart("nginx.service");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "restart of nginx.service queued with systemd");
  ASSERT_EQ(runner_.calls.size(), 1u);
  EXPECT_EQ(runner_.calls[0], (Argv{"systemctl", "restart", "--no-block", "--", "nginx.service"}));
  EXPECT_EQ(runner_.last_timeout, 7s);
}

TEST_F(Systemd, KillNamesTheSignal) {
  SystemdControl sd(runner_, run_dir_.string());
  auto r = sd.kill("getty@tty1.service", SIGTERM);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(runner_.calls.at(0), (Argv{"systemctl", "kill", "--signal=SIGTERM", "--", "getty@tty1.service"}));
  EXPECT_FALSE(sd.kill("getty@tty1.service", 0).ok());
  EXPECT_FALSE(sd.kill("getty@tty1.service", 1000).ok());
  EXPECT_EQ(runner_.calls.size(), 1u);
}

TEST_F(Systemd, BadUnitNamesAreRefusedWithoutRunningAnything) {
  SystemdControl sd(runner_, run_dir_.string());
  for (const std::string bad : {"", "nginx", "nginx.servic", "a b.service", "x;reboot.service", "../etc.service",
                                "foo@.service", "@x.service", ".service", "$(id).service", "--force.service"}) {
    auto r = sd.restart(bad);
    if (bad == "--force.service") {
      // Leading dashes are valid unit names ("-.mount"); "--" keeps them from being options.
      EXPECT_TRUE(r.ok());
      continue;
    }
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message, "not a systemd unit name: \"" + bad + "\"");
  }
  EXPECT_FALSE(sd.restart(std::string(250, 'a') + ".service").ok());
  EXPECT_EQ(runner_.calls.size(), 1u);  // only --force.service
}

// A respawn under systemd is a transient service of its own: systemd forks
// it, so the daemon's sandbox does not reach it; ids, groups, OOM priority,
// cwd, environment and argv are passed as they were captured.
TEST_F(Systemd, TransientUnitCarriesTheCapturedIdentity) {
  SystemdControl sd(runner_, run_dir_.string(), 7s);
  SpawnSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", "print('a b')"};
  spec.cwd = "/srv/app dir";
  spec.env = {{"PATH", "/usr/bin"}, {"X", "1=2"}};
  spec.uid = 1000;
  spec.gid = 100;
  spec.groups = std::vector<gid_t>{100, 27};
  spec.oom_score_adj = 200;
  spec.log_path = "/home/u/out.log";
  spec.log_as_user = true;
  auto r = sd.start_transient("faultprobe-respawn-42-1.service", spec);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "faultprobe-respawn-42-1.service");
  ASSERT_EQ(runner_.calls.size(), 1u);
  EXPECT_EQ(runner_.calls[0],
            (Argv{"systemd-run", "--unit=faultprobe-respawn-42-1.service", "--service-type=exec", "--collect",
                  "--quiet", "--no-ask-password", "--uid=1000", "--gid=100",
                  "--property=SupplementaryGroups=100 27", "--property=OOMScoreAdjust=200",
                  "--working-directory=/srv/app dir", "--setenv=PATH=/usr/bin", "--setenv=X=1=2", "--",
                  "/usr/bin/python3", "-c", "print('a b')"}));
  // The old stdout file is not reopened: PID 1 would open it as root.
  for (const auto& a : runner_.calls[0]) EXPECT_EQ(a.find("out.log"), std::string::npos) << a;

  // No groups at all is said as such (an empty assignment), not left to the user database.
  spec.groups = std::vector<gid_t>{};
  auto argv = SystemdControl::transient_argv("u.service", spec);
  ASSERT_TRUE(argv.ok());
  EXPECT_NE(std::find(argv->begin(), argv->end(), "--property=SupplementaryGroups="), argv->end());
}

TEST_F(Systemd, TransientUnitRefusesWhatItCannotPass) {
  SystemdControl sd(runner_, run_dir_.string());
  SpawnSpec spec;
  spec.argv = {"/bin/true"};
  EXPECT_FALSE(sd.start_transient("x.scope", spec).ok());  // a scope would keep our sandbox
  EXPECT_FALSE(sd.start_transient("$(id).service", spec).ok());
  spec.env = {{"BIG", std::string(200 * 1024, 'x')}};
  auto r = sd.start_transient("ok.service", spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("environment variable BIG cannot be passed"), std::string::npos);
  EXPECT_TRUE(runner_.calls.empty());
  fs::remove_all(run_dir_);
  spec.env.clear();
  EXPECT_FALSE(sd.start_transient("ok.service", spec).ok());  // no systemd
  EXPECT_TRUE(runner_.calls.empty());
}

TEST(UnitName, Valid) {
  for (const char* ok : {"nginx.service", "getty@tty1.service", "-.mount", "dev-disk-by\\x2duuid.device",
                         "user-1000.slice", "session-2.scope", "a:b_c.timer", "sshd.socket", "multi-user.target"}) {
    EXPECT_TRUE(valid_unit_name(ok)) << ok;
  }
}

TEST_F(Systemd, UnavailableWithoutTheRunDir) {
  SystemdControl sd(runner_, (run_dir_ / "missing").string());
  EXPECT_FALSE(sd.available());
  auto r = sd.restart("nginx.service");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "systemd is not running (no " + (run_dir_ / "missing").string() + ")");
  EXPECT_TRUE(runner_.calls.empty());
}

TEST_F(Systemd, FailuresCarryTheOutput) {
  SystemdControl sd(runner_, run_dir_.string());
  runner_.exit_code = 5;
  runner_.output_ = "Failed to restart nope.service: Unit nope.service not found.\n";
  auto r = sd.restart("nope.service");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "systemctl restart --no-block -- nope.service failed (exit 5): Failed to restart nope.service: Unit "
            "nope.service not found.");
  runner_.fail = true;
  r = sd.restart("nope.service");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "systemctl restart --no-block -- nope.service: timed out");
}

// ---- the real runner ----

TEST(RealCommandRunner, EchoAndExitCodes) {
  RealCommandRunner runner;
  std::string out;
  auto r = runner.run({"/bin/echo", "hello", "world"}, 5s, &out);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(out, "hello world\n");

  r = runner.run({"sh", "-c", "echo out; echo err >&2; exit 3"}, 5s, &out);  // through PATH
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 3);
  EXPECT_EQ(out, "out\nerr\n");

  r = runner.run({"sh", "-c", "read x; echo \"[$x]\""}, 5s, &out);  // stdin is /dev/null
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(out, "[]\n");
}

TEST(RealCommandRunner, TimeoutKillsTheCommand) {
  RealCommandRunner runner;
  auto t0 = std::chrono::steady_clock::now();
  auto r = runner.run({"/bin/sleep", "10"}, 200ms, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_EQ(r.error().message, "/bin/sleep 10 timed out after 200 ms (killed)");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);

  // Closing its output does not make it done: the timeout still holds.
  t0 = std::chrono::steady_clock::now();
  r = runner.run({"sh", "-c", "exec >&- 2>&-; sleep 10"}, 300ms, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(RealCommandRunner, MissingCommandAndSignals) {
  RealCommandRunner runner;
  auto r = runner.run({"/nonexistent/cmd"}, 1s, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("cannot run /nonexistent/cmd: ", 0), 0u) << r.error().message;
  r = runner.run({"sh", "-c", "kill -9 $$"}, 5s, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("killed by signal 9"), std::string::npos);
  EXPECT_FALSE(runner.run({}, 1s, nullptr).ok());
}

TEST(RealCommandRunner, OutputIsCapped) {
  RealCommandRunner runner;
  std::string out;
  auto r = runner.run({"sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"}, 10s, &out);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(out.size(), RealCommandRunner::kOutputCap + std::string("\n[output truncated]").size());
}

}  // namespace
}  // namespace fp
