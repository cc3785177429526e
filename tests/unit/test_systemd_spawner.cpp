// [[service]]s under systemd (issue 15 item 2): each starts as a transient
// unit of its own through systemd-run, its main pid comes from `systemctl
// show`, pinned and checked to be the unit's; with systemctl faked.
#include "act/systemd_spawner.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "fake_command_runner.h"
#include "fake_tree.h"

namespace fp {
namespace {

using Argv = std::vector<std::string>;

struct Rig {
  Rig() { tree.mkdir("run/systemd/system"); }
  // /proc/<our pid>/cgroup in the fake tree: the test process plays the unit's main process.
  void put_in(const std::string& cgroup_line) {
    tree.put("proc/" + std::to_string(getpid()) + "/cgroup", cgroup_line);
  }
  SpawnSpec spec() const {
    SpawnSpec s;
    s.argv = {"/usr/bin/web", "--port", "8080"};
    s.cwd = "/srv";
    s.user = "www-data";
    s.env = {{"PATH", "/usr/bin"}, {"FAULTPROBE_SERVICE", "web"}};
    s.log_path = "/var/log/faultprobe/web.log";
    return s;
  }
  test::FakeTree tree;
  test::FakeRunner runner;
  SystemdControl systemd{runner, tree.path("run/systemd/system")};
  // A short timeout and settle poll: the unsettled-unit tests wait them out.
  SystemdSpawner spawner{systemd, runner, tree.path("proc"), std::chrono::milliseconds(300),
                         std::chrono::milliseconds(5)};
};

// `systemctl show` answers for a unit in the given states (one per call, the
// last repeated); every other command succeeds silently.
void answer_show(test::FakeRunner& runner, std::vector<std::string> answers) {
  auto n = std::make_shared<size_t>(0);
  runner.respond = [answers, n](const Argv& argv, std::string* out) -> Result<int> {
    if (argv[0] == "systemctl" && argv[1] == "show") {
      if (out) *out = answers[std::min(*n, answers.size() - 1)];
      ++*n;
    }
    return 0;
  };
}

size_t count_calls(const test::FakeRunner& r, const std::string& verb) {
  return size_t(std::count_if(r.calls.begin(), r.calls.end(),
                              [&](const Argv& a) { return a[0] == "systemctl" && a[1] == verb; }));
}

bool has(const Argv& a, const std::string& s) { return std::find(a.begin(), a.end(), s) != a.end(); }

TEST(SystemdSpawner, AServiceStartsAsATransientUnitAndIsPinnedByItsMainPid) {
  Rig rig;
  rig.runner.output_ = std::to_string(getpid()) + "\n";  // MainPID
  rig.put_in("0::/system.slice/faultprobe-svc-web-1.service\n");
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->pid, getpid());
  EXPECT_GE(s->pidfd, 0);
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  const Argv& run = rig.runner.calls[0];
  EXPECT_EQ(run[0], "systemd-run");
  EXPECT_TRUE(has(run, "--unit=faultprobe-svc-web-1.service"));
  EXPECT_TRUE(has(run, "--service-type=exec"));
  EXPECT_TRUE(has(run, "--uid=www-data"));
  EXPECT_TRUE(has(run, "--working-directory=/srv"));
  EXPECT_TRUE(has(run, "--property=OOMScoreAdjust=0"));  // not the daemon's -900
  EXPECT_TRUE(has(run, "--property=StandardOutput=append:/var/log/faultprobe/web.log"));
  EXPECT_TRUE(has(run, "--property=StandardError=append:/var/log/faultprobe/web.log"));
  EXPECT_TRUE(has(run, "--setenv=FAULTPROBE_SERVICE=web"));
  // A failed unit stays loaded until its exit status was read.
  EXPECT_FALSE(has(run, "--collect"));
  const auto dashdash = std::find(run.begin(), run.end(), "--");
  ASSERT_NE(dashdash, run.end());
  EXPECT_EQ(Argv(dashdash + 1, run.end()), (Argv{"/usr/bin/web", "--port", "8080"}));
  EXPECT_EQ(rig.runner.calls[1],
            (Argv{"systemctl", "show", "-p", "MainPID", "--value", "--", "faultprobe-svc-web-1.service"}));
  // The next start is a unit of its own.
  rig.put_in("0::/system.slice/faultprobe-svc-web-2.service\n");
  auto again = rig.spawner.spawn(rig.spec());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(has(rig.runner.calls[2], "--unit=faultprobe-svc-web-2.service"));
  rig.spawner.release(s->pidfd);
  rig.spawner.release(again->pidfd);
}

TEST(SystemdSpawner, AMainPidOutsideTheUnitIsRefusedAndTheUnitStopped) {
  Rig rig;
  rig.runner.output_ = std::to_string(getpid()) + "\n";
  rig.put_in("0::/user.slice/session-1.scope\n");  // a reused pid: someone else's
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("not in faultprobe-svc-web-1.service"), std::string::npos) << s.error().message;
  ASSERT_EQ(rig.runner.calls.size(), 3u);
  EXPECT_EQ(rig.runner.calls[2], (Argv{"systemctl", "stop", "--no-block", "--", "faultprobe-svc-web-1.service"}));
}

TEST(SystemdSpawner, NoMainPidMeansNoService) {
  Rig rig;
  rig.runner.output_ = "0\n";
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("no main process"), std::string::npos) << s.error().message;
  EXPECT_EQ(rig.runner.calls.back()[1], "stop");
}

TEST(SystemdSpawner, AFailedSystemdRunIsAFailedStartAndLeavesNoFailedUnit) {
  Rig rig;
  rig.runner.exit_code = 1;
  rig.runner.output_ = "Failed to start transient service unit: Unit already exists.";
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("Unit already exists"), std::string::npos) << s.error().message;
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  EXPECT_EQ(rig.runner.calls[1], (Argv{"systemctl", "reset-failed", "--", "faultprobe-svc-web-1.service"}));
}

// systemd-run past its timeout: a failed start, and the unit (which may still
// come up) is stopped, so nothing runs unsupervised.
TEST(SystemdSpawner, ASystemdRunThatTimesOutIsAFailedStartAndItsUnitIsStopped) {
  Rig rig;
  rig.runner.fail = true;  // every call "timed out"
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ETIMEDOUT);
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  EXPECT_EQ(rig.runner.calls[1], (Argv{"systemctl", "stop", "--no-block", "--", "faultprobe-svc-web-1.service"}));
}

// Issue 15 item 4: how a service under systemd ended is systemd's record, never a guess.
TEST(SystemdSpawner, AUnitAlreadyCollectedEndedCleanly) {
  Rig rig;
  answer_show(rig.runner, {"LoadState=not-found\nActiveState=inactive\nExecMainCode=0\nExecMainStatus=0\n"});
  auto st = rig.spawner.exit_status("faultprobe-svc-web-1.service");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  ASSERT_EQ(rig.runner.calls.size(), 1u);
  EXPECT_EQ(rig.runner.calls[0], (Argv{"systemctl", "show", "-p", "LoadState", "-p", "ActiveState", "-p",
                                       "ExecMainCode", "-p", "ExecMainStatus", "--", "faultprobe-svc-web-1.service"}));
  EXPECT_EQ(count_calls(rig.runner, "reset-failed"), 0u);
}

TEST(SystemdSpawner, AFailedUnitGivesItsExitCodeAndIsResetAfterwards) {
  Rig rig;
  answer_show(rig.runner, {"LoadState=loaded\nActiveState=failed\nExecMainCode=1\nExecMainStatus=3\n"});
  auto st = rig.spawner.exit_status("faultprobe-svc-web-1.service");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 3) << describe_wait_status(*st);
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  EXPECT_EQ(rig.runner.calls[1], (Argv{"systemctl", "reset-failed", "--", "faultprobe-svc-web-1.service"}));
}

TEST(SystemdSpawner, AMainProcessKilledByASignalSaysWhichAndACoreDumpIsKept) {
  Rig rig;
  answer_show(rig.runner, {"LoadState=loaded\nActiveState=failed\nExecMainCode=2\nExecMainStatus=9\n"});
  auto st = rig.spawner.exit_status("u.service");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL) << describe_wait_status(*st);
  answer_show(rig.runner, {"LoadState=loaded\nActiveState=failed\nExecMainCode=3\nExecMainStatus=11\n"});
  st = rig.spawner.exit_status("u.service");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(describe_wait_status(*st), "killed by SIGSEGV (core dumped)");
  EXPECT_EQ(count_calls(rig.runner, "reset-failed"), 2u);
}

// The pidfd can say "ended" before systemd took the SIGCHLD in: asked again.
TEST(SystemdSpawner, AUnitStillDeactivatingIsAskedAgainUntilItSettles) {
  Rig rig;
  answer_show(rig.runner, {"LoadState=loaded\nActiveState=active\nExecMainCode=0\nExecMainStatus=0\n",
                           "LoadState=loaded\nActiveState=deactivating\nExecMainCode=1\nExecMainStatus=0\n",
                           "LoadState=loaded\nActiveState=inactive\nExecMainCode=1\nExecMainStatus=0\n"});
  auto st = rig.spawner.exit_status("u.service");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  EXPECT_EQ(count_calls(rig.runner, "show"), 3u);
  EXPECT_EQ(count_calls(rig.runner, "reset-failed"), 0u);  // inactive: collected by systemd itself
}

TEST(SystemdSpawner, AUnitThatNeverSettlesIsAnErrorNotAGuess) {
  Rig rig;
  answer_show(rig.runner, {"LoadState=loaded\nActiveState=deactivating\nExecMainCode=0\nExecMainStatus=0\n"});
  auto st = rig.spawner.exit_status("u.service");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ETIMEDOUT);
  EXPECT_NE(st.error().message.find("still deactivating"), std::string::npos) << st.error().message;
  rig.runner.respond = nullptr;
  rig.runner.fail = true;  // systemctl itself timing out
  st = rig.spawner.exit_status("u.service");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("systemctl show u.service"), std::string::npos) << st.error().message;
}

// Issue 15 item 3: a CRIU restore under systemd is a transient unit of its
// own (criu is not the daemon's child, nothing of its sandbox reaches the
// restored tree), and its MainPID is pinned like a spawned service's.
TEST(SystemdSpawner, ACriuRestoreRunsAsATransientForkingUnitAndItsMainPidIsPinned) {
  Rig rig;
  rig.tree.mkdir("images/000002");
  const std::string image = rig.tree.path("images/000002");
  rig.runner.output_ = std::to_string(getpid()) + "\n";  // MainPID
  rig.put_in("0::/system.slice/faultprobe-svc-db-1.service\n");
  CriuBackend criu([](const auto&, auto, auto*) -> Result<int> { return Error{EPERM, "criu must not run here"}; });
  std::vector<pid_t> checked;
  auto s = rig.spawner.restore(criu, image, "db", [&](pid_t pid) -> Result<void> {
    checked.push_back(pid);
    return {};
  });
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->pid, getpid());
  EXPECT_EQ(s->unit, "faultprobe-svc-db-1.service");
  EXPECT_EQ(checked, std::vector<pid_t>{getpid()});
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  EXPECT_EQ(rig.runner.calls[0],
            (Argv{"systemd-run", "--unit=faultprobe-svc-db-1.service", "--service-type=forking",
                  "--property=PIDFile=" + image + "/restore.pid", "--property=TimeoutStartSec=60",
                  "--property=OOMScoreAdjust=0", "--quiet", "--no-ask-password", "--", "criu", "restore", "-D", image,
                  "--shell-job", "-d", "--pidfile", image + "/restore.pid", "-o", "restore.log",
                  "--manage-cgroups=ignore"}));
  EXPECT_GE(rig.runner.timeouts[0], std::chrono::seconds(60));  // criu's own bound, not systemctl's
  EXPECT_EQ(rig.runner.calls[1][1], "show");
  rig.spawner.release(s->pidfd);
}

TEST(SystemdSpawner, ARestoredPidThatFailsItsCheckIsNotKeptAndTheUnitIsStopped) {
  Rig rig;
  rig.tree.mkdir("images/000001");
  rig.runner.output_ = std::to_string(getpid()) + "\n";
  rig.put_in("0::/system.slice/faultprobe-svc-db-1.service\n");
  CriuBackend criu;
  auto s = rig.spawner.restore(criu, rig.tree.path("images/000001"), "db",
                               [](pid_t) -> Result<void> { return Error{EPERM, "started before the restore"}; });
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("started before the restore"), std::string::npos) << s.error().message;
  EXPECT_EQ(rig.runner.calls.back(), (Argv{"systemctl", "stop", "--no-block", "--", "faultprobe-svc-db-1.service"}));
}

TEST(SystemdSpawner, AFailedRestoreUnitSaysWhyFromCriusLogAndLeavesNothingBehind) {
  Rig rig;
  rig.tree.put("images/000001/restore.log", "(00.01) Error (criu/cr-restore.c:1): Can't restore pid 42: busy\n");
  rig.runner.exit_code = 1;
  CriuBackend criu;
  auto s = rig.spawner.restore(criu, rig.tree.path("images/000001"), "db", nullptr);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("Can't restore pid 42"), std::string::npos) << s.error().message;
  EXPECT_EQ(count_calls(rig.runner, "stop"), 1u);
  EXPECT_EQ(count_calls(rig.runner, "reset-failed"), 1u);
}

TEST(SystemdSpawner, UnitNamesHoldOnlyWhatSystemdTakes) {
  EXPECT_EQ(SystemdSpawner::unit_for("web", 3), "faultprobe-svc-web-3.service");
  EXPECT_EQ(SystemdSpawner::unit_for("a b/c;$(x)", 1), "faultprobe-svc-a_b_c___x_-1.service");
  EXPECT_TRUE(valid_unit_name(SystemdSpawner::unit_for(std::string(300, 'x'), 99)));
}

TEST(SystemdSpawner, SignalsOnlyTheMainProcessThroughItsPidfd) {
  Rig rig;
  // A child of ours stands in for the unit's main process.
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  auto a = rig.spawner.adopt(child);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_FALSE(rig.spawner.reap(child, a->pidfd).has_value());
  ASSERT_TRUE(rig.spawner.signal(child, a->pidfd, SIGTERM));
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_FALSE(rig.spawner.signal(child, -1, SIGTERM));  // never by a bare pid
  rig.spawner.release(a->pidfd);
}

}  // namespace
}  // namespace fp
