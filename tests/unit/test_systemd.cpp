// SystemdControl with a fake command runner, and the real runner with
// /bin/echo, sh and a timeout on /bin/sleep.
#include "act/systemd.h"

#include <gtest/gtest.h>
#include <unistd.h>

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
