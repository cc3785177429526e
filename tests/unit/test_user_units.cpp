// Units of users' own systemd managers (issue 15 item 4): the unit named by a
// cgroup path and its manager; a policy's unit glob selects a user unit only
// with user_units = true; a restart of one goes through that user's manager
// (systemctl --user -M UID@), never through the system manager. The handler
// and the real actuator run against a fake systemctl.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "act/handler.h"
#include "act/real_actuator.h"
#include "act/systemd.h"
#include "config/config.h"
#include "detect/systemd_unit.h"
#include "fake_command_runner.h"
#include "fake_tree.h"

namespace fp {
namespace {

using Argv = std::vector<std::string>;
constexpr uint64_t kSec = 1'000'000'000ull;
constexpr const char* kUserFoo = "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service";

SystemdUnit system_unit(const std::string& name) { return SystemdUnit{name, std::nullopt}; }
SystemdUnit user_unit(const std::string& name, uint32_t uid) { return SystemdUnit{name, uid}; }

TEST(SystemdUnitOf, SystemAndUserManagers) {
  EXPECT_EQ(systemd_unit_of("/system.slice/nginx.service"), system_unit("nginx.service"));
  EXPECT_EQ(systemd_unit_of(kUserFoo), user_unit("foo.service", 1000));
  EXPECT_EQ(systemd_unit_of("/user.slice/user-1000.slice/user@1000.service/init.scope"), user_unit("init.scope", 1000));
  // The user manager itself (no unit below it) is the system's user@1000.service.
  EXPECT_EQ(systemd_unit_of("/user.slice/user-1000.slice/user@1000.service"), system_unit("user@1000.service"));
  EXPECT_EQ(systemd_unit_of("/user.slice/user-1000.slice/session-3.scope"), system_unit("session-3.scope"));
  EXPECT_EQ(systemd_unit_of("/init.scope"), system_unit("init.scope"));
  EXPECT_EQ(systemd_unit_of("/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope"),
            system_unit("cri-containerd-abc.scope"));
  EXPECT_EQ(systemd_unit_of("/batch/job7"), system_unit(""));
  EXPECT_EQ(systemd_unit_of("/"), system_unit(""));
  EXPECT_EQ(systemd_unit_of(""), system_unit(""));
}

TEST(SystemdUnitOf, NamesChosenBelowAUnitNeverNameTheUnit) {
  // A service's (or a container's) own sub-groups belong to it, whatever they are called.
  EXPECT_EQ(systemd_unit_of("/system.slice/docker-abc.scope/sshd.service"), system_unit("docker-abc.scope"));
  EXPECT_EQ(systemd_unit_of("/system.slice/build.service/payload/sshd.service"), system_unit("build.service"));
  // A user naming a group "user@0.service" in their own tree gets no other manager.
  EXPECT_EQ(systemd_unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/user@0.service/x.service"),
            user_unit("user@0.service", 1000));
  EXPECT_EQ(systemd_unit_of("/system.slice/docker-abc.scope/user@0.service/sshd.service"),
            system_unit("docker-abc.scope"));
  // Not a user manager: no uid, or not only digits.
  EXPECT_EQ(systemd_unit_of("/user.slice/user@.service/foo.service"), system_unit("user@.service"));
  EXPECT_EQ(systemd_unit_of("/user.slice/user@10x.service/foo.service"), system_unit("user@10x.service"));
  EXPECT_EQ(systemd_unit_of("/user.slice/user@99999999999.service/foo.service"),
            system_unit("user@99999999999.service"));
  EXPECT_EQ(unit_of_cgroup(kUserFoo), "foo.service");
}

TEST(UserUnits, PolicyUnitGlobSelectsUserUnitsOnlyWhenTheyAreAllowed) {
  Target t;
  t.comm = "foo";
  set_unit(t, kUserFoo);
  ASSERT_EQ(t.unit, "foo.service");
  ASSERT_EQ(t.unit_user, 1000u);
  ProcessMatch m;
  m.unit = "foo.service";
  EXPECT_FALSE(policy_matches(m, t));
  EXPECT_TRUE(policy_matches(m, t, true));
  m.unit = "*";
  EXPECT_FALSE(policy_matches(m, t));
  // Other keys are not about units: they still select it.
  ProcessMatch by_comm;
  by_comm.comm = "foo";
  EXPECT_TRUE(policy_matches(by_comm, t));
  // The system unit of the same name is selected either way.
  Target sys = t;
  set_unit(sys, "/system.slice/foo.service");
  EXPECT_FALSE(sys.unit_user);
  m.unit = "foo.service";
  EXPECT_TRUE(policy_matches(m, sys));
  EXPECT_TRUE(policy_matches(m, sys, true));
}

TEST(UserUnits, ConfigKey) {
  auto c = parse_config(R"(
[[policy]]
name = "mine"
match = { unit = "foo.service" }
user_units = true
on.hang = ["restart"]

[[policy]]
name = "system"
match = { unit = "foo.service" }
on.hang = ["restart"]
)",
                        "t.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->policies.at(0).user_units);
  EXPECT_FALSE(c->policies.at(1).user_units);
  auto bad = parse_config("[[policy]]\nname = \"p\"\nmatch = { comm = \"x\" }\nuser_units = \"yes\"\n", "t.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("user_units"), std::string::npos) << bad.error().message;
}

// What the daemon's resolver does: the target's unit from its cgroup path.
class CgroupResolver : public TargetResolver {
 public:
  std::string cgroup;
  Target resolve(const FaultRecord& f) override {
    Target t;
    t.key = f.culprit;
    t.comm = f.comm;
    t.cgroup = cgroup;
    t.uid = 1000;
    set_unit(t, t.cgroup);
    return t;
  }
};

// The handler and the real actuator, with systemctl faked and a hang open on pid 4242.
struct Rig {
  explicit Rig(const std::string& toml, const std::string& cgroup) {
    auto c = parse_config(toml, "t.toml");
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    if (c.ok()) cfg = *c;
    tree.mkdir("run/systemd/system");  // "systemd is running"
    RealActuatorDeps deps;
    deps.systemd = &systemd;
    deps.proc_root = tree.path("proc");
    actuator = std::make_unique<RealActuator>(deps);
    handler = std::make_unique<Handler>(cfg, *actuator, TargetRefuseFn{}, false);
    resolver.cgroup = cgroup;
  }
  HandlerOutput hang() {
    FaultRecord f;
    f.kind = FaultRecord::Kind::Fault;
    f.cls = FaultClass::Hang;
    f.rule = "hang";
    f.culprit = ProcKey{4242, 7};
    f.comm = "foo";
    return handler->on_tick(1000 * kSec, {f}, {f}, resolver);
  }
  // Every systemctl call that would act through the system manager.
  std::vector<Argv> system_calls() const {
    std::vector<Argv> out;
    for (const auto& a : runner.calls)
      if (std::find(a.begin(), a.end(), "--user") == a.end()) out.push_back(a);
    return out;
  }

  test::FakeTree tree;
  test::FakeRunner runner;
  SystemdControl systemd{runner, tree.path("run/systemd/system")};
  Config cfg;
  std::unique_ptr<RealActuator> actuator;
  std::unique_ptr<Handler> handler;
  CgroupResolver resolver;
};

constexpr const char* kUnitPolicy = R"(
[[policy]]
name = "foo"
match = { unit = "foo.service" }
on.hang = ["restart"]
)";

TEST(UserUnits, AUnitGlobForSystemUnitsDoesNotSelectAUserUnit) {
  Rig rig(kUnitPolicy, kUserFoo);
  Target t = rig.resolver.resolve(FaultRecord{});
  EXPECT_EQ(rig.handler->policy_for(t), nullptr);
  HandlerOutput out = rig.hang();
  EXPECT_TRUE(out.actions.empty());
  EXPECT_TRUE(rig.runner.calls.empty());
}

TEST(UserUnits, WithUserUnitsTheRestartGoesThroughTheUserManager) {
  Rig rig(std::string(kUnitPolicy) + "user_units = true\n", kUserFoo);
  HandlerOutput out = rig.hang();
  ASSERT_EQ(out.actions.size(), 1u);
  const ActionRecord& a = out.actions[0];
  EXPECT_EQ(a.type, ActionType::Restart);
  EXPECT_EQ(a.outcome.result, ActionResult::Ok) << a.outcome.detail;
  EXPECT_EQ(a.outcome.detail, "restart of foo.service queued with the systemd manager of uid 1000");
  ASSERT_EQ(rig.runner.calls.size(), 1u);
  EXPECT_EQ(rig.runner.calls[0],
            (Argv{"systemctl", "--user", "-M", "1000@", "restart", "--no-block", "--", "foo.service"}));
  EXPECT_TRUE(rig.system_calls().empty());
}

TEST(UserUnits, APolicyByCommRefusesToRestartAUserUnitAndSaysWhy) {
  Rig rig(R"(
[[policy]]
name = "by-comm"
match = { comm = "foo" }
on.hang = ["restart", "kill"]
)",
          kUserFoo);
  HandlerOutput out = rig.hang();
  ASSERT_GE(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restart);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(out.actions[0].outcome.detail,
            "foo.service is a unit of uid 1000's own systemd manager, and policy by-comm does not say "
            "user_units = true: not restarted");
  EXPECT_TRUE(rig.runner.calls.empty());
}

TEST(UserUnits, ASystemUnitStillRestartsThroughTheSystemManager) {
  Rig rig(kUnitPolicy, "/system.slice/foo.service");
  HandlerOutput out = rig.hang();
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Ok) << out.actions[0].outcome.detail;
  ASSERT_EQ(rig.runner.calls.size(), 1u);
  EXPECT_EQ(rig.runner.calls[0], (Argv{"systemctl", "restart", "--no-block", "--", "foo.service"}));
}

TEST(UserUnits, DryRunNamesTheUserManager) {
  Rig rig(std::string(kUnitPolicy) + "user_units = true\ndry_run = true\n", kUserFoo);
  HandlerOutput out = rig.hang();
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::DryRun);
  EXPECT_EQ(out.actions[0].outcome.detail, "would systemctl --user -M 1000@ restart foo.service");
  EXPECT_TRUE(rig.runner.calls.empty());
}

}  // namespace
}  // namespace fp
