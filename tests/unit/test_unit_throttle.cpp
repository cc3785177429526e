// Throttling a systemd unit's process through systemd (act/unit_throttle.h),
// with systemctl faked: the set-property arguments for each limit, the values
// read before and written back (an unset one reset), the user manager for a
// user unit, a failed systemctl leaving nothing behind, and a release by a
// daemon that restarted, from the state file.
#include "act/unit_throttle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "act/process.h"
#include "act/real_actuator.h"
#include "act/spawn.h"
#include "fake_command_runner.h"
#include "fake_tree.h"
#include "../time_scale.h"

namespace fp {
namespace {

using Argv = std::vector<std::string>;
using namespace std::chrono_literals;

// systemctl faked: `show` prints `shown`, set-property exits with set_rc.
struct Rig {
  Rig() {
    tree.mkdir("run/systemd/system");
    runner.respond = [this](const Argv& a, std::string* out) -> Result<int> {
      const bool is_show = std::find(a.begin(), a.end(), "show") != a.end();
      if (out) *out = is_show ? shown : "";
      return is_show ? 0 : set_rc;
    };
  }
  std::vector<Argv> calls_with(const std::string& verb) const {
    std::vector<Argv> out;
    for (const auto& a : runner.calls)
      if (std::find(a.begin(), a.end(), verb) != a.end()) out.push_back(a);
    return out;
  }
  std::string state() const { return tree.path("state/unit-throttles.json"); }

  test::FakeTree tree;
  test::FakeRunner runner;
  SystemdControl systemd{runner, tree.path("run/systemd/system")};
  std::string shown = "CPUQuotaPerSecUSec=infinity\nTasksMax=4915\n";
  int set_rc = 0;
};

ThrottleLimits cpu(double share) {
  ThrottleLimits l;
  l.cpu_share = share;
  return l;
}

const ProcKey kKey{4242, 7};

TEST(UnitThrottle, EachLimitMapsToItsProperty) {
  ThrottleLimits l;
  l.cpu_share = 0.2;
  l.memory_bytes = 256u << 20;
  l.io_bps = 1048576;
  l.pids = 64;
  EXPECT_EQ(UnitThrottle::assignments(l, {"8:0", "259:0"}),
            (Argv{"CPUQuota=20%", "MemoryHigh=268435456", "IOReadBandwidthMax=/dev/block/8:0 1048576",
                  "IOReadBandwidthMax=/dev/block/259:0 1048576", "IOWriteBandwidthMax=/dev/block/8:0 1048576",
                  "IOWriteBandwidthMax=/dev/block/259:0 1048576", "TasksMax=64"}));
  EXPECT_EQ(UnitThrottle::properties_for(l),
            (Argv{"CPUQuotaPerSecUSec", "MemoryHigh", "IOReadBandwidthMax", "IOWriteBandwidthMax", "TasksMax"}));
  EXPECT_EQ(UnitThrottle::assignments(cpu(0.125), {}), Argv{"CPUQuota=12.5%"});
  EXPECT_EQ(UnitThrottle::assignments(cpu(2.0), {}), Argv{"CPUQuota=200%"});
  EXPECT_EQ(UnitThrottle::assignments(cpu(0.001), {}), Argv{"CPUQuota=1%"});  // the kernel's minimum quota
}

TEST(UnitThrottle, RestoreOfWhatShowPrinted) {
  auto r = [](const std::string& p, Argv shown) {
    auto x = UnitThrottle::restore_of(p, shown);
    EXPECT_TRUE(x.ok()) << x.error().message;
    return x.ok() ? *x : Argv{};
  };
  EXPECT_EQ(r("CPUQuotaPerSecUSec", {"infinity"}), Argv{"CPUQuota="});  // unset: reset
  EXPECT_EQ(r("CPUQuotaPerSecUSec", {}), Argv{"CPUQuota="});
  EXPECT_EQ(r("CPUQuotaPerSecUSec", {"900ms"}), Argv{"CPUQuota=90%"});
  EXPECT_EQ(r("CPUQuotaPerSecUSec", {"1.5s"}), Argv{"CPUQuota=150%"});
  EXPECT_EQ(r("CPUQuotaPerSecUSec", {"1min 30s"}), Argv{"CPUQuota=9000%"});
  EXPECT_EQ(r("MemoryHigh", {"infinity"}), Argv{"MemoryHigh=infinity"});
  EXPECT_EQ(r("TasksMax", {"4915"}), Argv{"TasksMax=4915"});
  EXPECT_EQ(r("IOReadBandwidthMax", {}), Argv{"IOReadBandwidthMax="});
  EXPECT_EQ(r("IOWriteBandwidthMax", {"/dev/sda 1000", "/dev/sdb 2000"}),
            (Argv{"IOWriteBandwidthMax=", "IOWriteBandwidthMax=/dev/sda 1000", "IOWriteBandwidthMax=/dev/sdb 2000"}));
  EXPECT_FALSE(UnitThrottle::restore_of("CPUQuotaPerSecUSec", {"soon"}).ok());
  EXPECT_FALSE(UnitThrottle::restore_of("TasksMax", {"5; rm"}).ok());
  EXPECT_FALSE(UnitThrottle::restore_of("TasksMax", {}).ok());
}

TEST(UnitThrottle, ReadsThenSetsAndReleaseResetsWhatWasUnset) {
  Rig rig;
  UnitThrottle ut(rig.systemd, rig.state(), {});
  ThrottleLimits l = cpu(0.2);
  l.pids = 64;
  auto r = ut.apply(kKey, "app.service", std::nullopt, l);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("unit-wide"), std::string::npos) << *r;
  ASSERT_EQ(rig.runner.calls.size(), 2u);
  EXPECT_EQ(rig.runner.calls[0], (Argv{"systemctl", "show", "-p", "CPUQuotaPerSecUSec,TasksMax", "--", "app.service"}));
  EXPECT_EQ(rig.runner.calls[1],
            (Argv{"systemctl", "set-property", "--runtime", "--", "app.service", "CPUQuota=20%", "TasksMax=64"}));
  EXPECT_TRUE(ut.throttled(kKey));
  EXPECT_NE(rig.tree.get("state/unit-throttles.json").find("TasksMax=4915"), std::string::npos);

  auto back = ut.release(kKey);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(rig.runner.calls.back(),
            (Argv{"systemctl", "set-property", "--runtime", "--", "app.service", "CPUQuota=", "TasksMax=4915"}));
  EXPECT_FALSE(ut.throttled(kKey));
  EXPECT_EQ(rig.tree.get("state/unit-throttles.json").find("app.service"), std::string::npos);
}

TEST(UnitThrottle, ReleaseRestoresAnOldQuota) {
  Rig rig;
  rig.shown = "CPUQuotaPerSecUSec=900ms\n";
  UnitThrottle ut(rig.systemd, rig.state(), {});
  ASSERT_TRUE(ut.apply(kKey, "app.service", std::nullopt, cpu(0.2)).ok());
  ASSERT_TRUE(ut.release(kKey).ok());
  EXPECT_EQ(rig.runner.calls.back(),
            (Argv{"systemctl", "set-property", "--runtime", "--", "app.service", "CPUQuota=90%"}));
}

TEST(UnitThrottle, AUserUnitGoesToItsUserManager) {
  Rig rig;
  UnitThrottle ut(rig.systemd, rig.state(), {});
  ASSERT_TRUE(ut.apply(kKey, "app.service", 1000u, cpu(0.2)).ok());
  ASSERT_TRUE(ut.release(kKey).ok());
  ASSERT_EQ(rig.runner.calls.size(), 3u);
  for (const auto& a : rig.runner.calls) {
    ASSERT_GE(a.size(), 4u);
    EXPECT_EQ((Argv{a.begin(), a.begin() + 4}), (Argv{"systemctl", "--user", "-M", "1000@"}));
  }
}

TEST(UnitThrottle, AFailedSetPropertyLeavesNothingBehind) {
  Rig rig;
  rig.set_rc = 1;
  UnitThrottle ut(rig.systemd, rig.state(), {});
  auto r = ut.apply(kKey, "app.service", std::nullopt, cpu(0.2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("failed (exit 1)"), std::string::npos) << r.error().message;
  EXPECT_FALSE(ut.throttled(kKey));
  EXPECT_TRUE(ut.keys().empty());
  EXPECT_EQ(rig.tree.get("state/unit-throttles.json").find("app.service"), std::string::npos);
  UnitThrottle again(rig.systemd, rig.state(), {});
  EXPECT_TRUE(again.keys().empty());
}

TEST(UnitThrottle, ARestartedDaemonReleasesFromTheStateFile) {
  Rig rig;
  rig.shown = "CPUQuotaPerSecUSec=500ms\n";
  {
    UnitThrottle first(rig.systemd, rig.state(), {});
    ASSERT_TRUE(first.apply(kKey, "app.service", 1000u, cpu(0.2)).ok());
  }
  UnitThrottle next(rig.systemd, rig.state(), {});
  EXPECT_EQ(next.keys(), std::vector<ProcKey>{kKey});
  ASSERT_TRUE(next.release(kKey).ok());
  EXPECT_EQ(rig.runner.calls.back(), (Argv{"systemctl", "--user", "-M", "1000@", "set-property", "--runtime", "--",
                                           "app.service", "CPUQuota=50%"}));
}

TEST(UnitThrottle, TwoProcessesOfOneUnitShareTheValuesFromBefore) {
  Rig rig;
  rig.shown = "CPUQuotaPerSecUSec=900ms\n";
  UnitThrottle ut(rig.systemd, rig.state(), {});
  const ProcKey other{4343, 9};
  ASSERT_TRUE(ut.apply(kKey, "app.service", std::nullopt, cpu(0.2)).ok());
  rig.shown = "CPUQuotaPerSecUSec=200ms\n";  // ours now: must not become the value to restore
  ASSERT_TRUE(ut.apply(other, "app.service", std::nullopt, cpu(0.3)).ok());
  EXPECT_EQ(rig.calls_with("show").size(), 1u);
  auto first = ut.release(kKey);
  ASSERT_TRUE(first.ok());
  EXPECT_NE(first->find("stays throttled"), std::string::npos) << *first;
  ASSERT_TRUE(ut.release(other).ok());
  EXPECT_EQ(rig.runner.calls.back(),
            (Argv{"systemctl", "set-property", "--runtime", "--", "app.service", "CPUQuota=90%"}));
}

// The actuator: a unit's process goes to systemd, the record says unit-wide.
struct ActuatorRig : Rig {
  explicit ActuatorRig(ActionWorker* worker = nullptr) : ut(systemd, state(), {}) {
    RealActuatorDeps deps;
    deps.systemd = &systemd;
    deps.unit_throttle = &ut;
    deps.worker = worker;
    deps.throttle_why = "none in this test";
    actuator = std::make_unique<RealActuator>(deps);
    self.key.tgid = uint32_t(::getpid());
    self.key.start_ns = process_start_ns(::getpid()).value();
    self.comm = "unit_tests";
    self.unit = "app.service";
  }
  UnitThrottle ut;
  std::unique_ptr<RealActuator> actuator;
  Target self;
};

TEST(UnitThrottle, TheActuatorThrottlesAUnitThroughSystemd) {
  ActuatorRig rig;
  ActionOutcome dry = rig.actuator->throttle(rig.self, cpu(0.2), true);
  EXPECT_EQ(dry.result, ActionResult::DryRun);
  EXPECT_NE(dry.detail.find("systemctl set-property --runtime app.service CPUQuota=20%"), std::string::npos)
      << dry.detail;
  EXPECT_TRUE(rig.runner.calls.empty());
  ActionOutcome o = rig.actuator->throttle(rig.self, cpu(0.2), false);
  ASSERT_EQ(o.result, ActionResult::Ok) << o.detail;
  EXPECT_NE(o.detail.find("unit-wide"), std::string::npos) << o.detail;
  ActionOutcome u = rig.actuator->unthrottle(rig.self, false);
  ASSERT_EQ(u.result, ActionResult::Ok) << u.detail;
  EXPECT_EQ(rig.runner.calls.back(),
            (Argv{"systemctl", "set-property", "--runtime", "--", "app.service", "CPUQuota="}));
}

TEST(UnitThrottle, AFailedSystemctlIsAnErrorInTheActionRecord) {
  ActuatorRig rig;
  rig.set_rc = 1;
  ActionOutcome o = rig.actuator->throttle(rig.self, cpu(0.2), false);
  EXPECT_EQ(o.result, ActionResult::Failed);
  EXPECT_NE(o.detail.find("set-property"), std::string::npos) << o.detail;
  EXPECT_FALSE(rig.ut.throttled(rig.self.key));
  EXPECT_TRUE(rig.ut.keys().empty());
}

// On the worker: queued at once; a failure comes back as an evasion (the
// handler's recovery check fails with it and the ladder goes on).
TEST(UnitThrottle, OnTheWorkerAFailureComesBackAsAnEvasion) {
  ActionWorker worker;
  ActuatorRig rig(&worker);
  rig.set_rc = 1;
  ActionOutcome o = rig.actuator->throttle(rig.self, cpu(0.2), false);
  ASSERT_EQ(o.result, ActionResult::Ok) << o.detail;
  EXPECT_NE(o.detail.find("queued"), std::string::npos) << o.detail;
  std::vector<ThrottleEvasion> ev;
  const auto deadline = std::chrono::steady_clock::now() + test::scaled(10s);
  while (ev.empty() && std::chrono::steady_clock::now() < deadline) {
    worker.drain();
    ev = rig.actuator->take_evasions();
    if (ev.empty()) std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].key, rig.self.key);
  EXPECT_NE(ev[0].detail.find("failed"), std::string::npos) << ev[0].detail;
  EXPECT_FALSE(rig.ut.throttled(rig.self.key));
}

}  // namespace
}  // namespace fp
