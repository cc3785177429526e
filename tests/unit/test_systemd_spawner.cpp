// [[service]]s under systemd (issue 15 item 2): each starts as a transient
// unit of its own through systemd-run, its main pid comes from `systemctl
// show`, pinned and checked to be the unit's; with systemctl faked.
#include "act/systemd_spawner.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
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
  SystemdSpawner spawner{systemd, runner, tree.path("proc")};
};

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

TEST(SystemdSpawner, AFailedSystemdRunIsAFailedStart) {
  Rig rig;
  rig.runner.exit_code = 1;
  rig.runner.output_ = "Failed to start transient service unit: Unit already exists.";
  auto s = rig.spawner.spawn(rig.spec());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("Unit already exists"), std::string::npos) << s.error().message;
  EXPECT_EQ(rig.runner.calls.size(), 1u);
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
