// Hardware faults end to end in user space: decoded events (and hwmon
// readings) through the real Engine (detectors, tracker) to fault records and
// their JSON; the [hardware] config; policies acting on a hardware fault's
// victims (fake actuator, as in test_handler).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "act/handler.h"
#include "config/config.h"
#include "detect/engine.h"
#include "detect/hw_sources.h"
#include "fake_tree.h"
#include "synthetic.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using synthetic::kSec;
using synthetic::kT0;

class NoInfos : public ProcInfoSource {
 public:
  const ProcInfo& info(const ProcKey&) override { return none_; }

 private:
  ProcInfo none_;
};

HwEvent disk_error(const std::string& disk, uint32_t pid, uint64_t start, const std::string& comm) {
  HwEvent e;
  e.source = HwEvent::Source::Disk;
  e.grade = HwEvent::Grade::Uncorrected;
  e.device = disk;
  e.proc = ProcKey{pid, start};
  e.comm = comm;
  e.fields = {{"disk", disk}, {"dev", "253:0"}, {"op", "read"}, {"error", "ioerr"}, {"pid", pid}, {"comm", comm}};
  return e;
}

HwEvent mce(uint32_t cpu, bool uncorrected, uint32_t pid = 0) {
  HwEvent e;
  e.source = HwEvent::Source::Mce;
  e.grade = uncorrected ? HwEvent::Grade::Uncorrected : HwEvent::Grade::Corrected;
  e.device = "cpu " + std::to_string(cpu) + " bank 1";
  e.proc = ProcKey{pid, pid ? 55ull : 0};
  e.fields = {{"cpu", cpu}, {"bank", 1}, {"uncorrected", uncorrected}};
  return e;
}

// An engine with the built-in rules (overridable), fed events tick by tick.
struct Rig {
  explicit Rig(std::string_view toml = "") {
    auto c = parse_config(toml, "t.toml");
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    cfg = c.ok() ? c.value() : default_config();
    engine = std::make_unique<Engine>(cfg, HostInfo{}, infos, 777);
  }
  std::vector<FaultRecord> tick(EventBatch b = {}) {
    now += kSec / 10;
    auto out = engine->tick(now, {}, b);
    all.insert(all.end(), out.begin(), out.end());
    return out;
  }
  std::vector<FaultRecord> ticks(double seconds) {
    std::vector<FaultRecord> out;
    for (int i = 0; i < int(seconds * 10); i++) {
      auto r = tick();
      out.insert(out.end(), r.begin(), r.end());
    }
    return out;
  }
  Config cfg;
  NoInfos infos;
  std::unique_ptr<Engine> engine;
  uint64_t now = kT0;
  std::vector<FaultRecord> all;
};

TEST(HwFaults, DiskErrorOpensCriticalNamingTheDiskAndTheReader) {
  Rig rig;
  EventBatch b;
  b.hw.push_back(disk_error("dm-0", 4321, 99, "reader"));
  auto out = rig.tick(b);
  ASSERT_EQ(out.size(), 1u);
  const FaultRecord& f = out[0];
  EXPECT_EQ(f.cls, FaultClass::HwDiskError);
  EXPECT_EQ(f.severity, Severity::Critical);
  EXPECT_EQ(f.culprit.tgid, 0u);  // the disk is to blame, not a process
  EXPECT_EQ(f.subject, "dm-0#uncorrected");
  EXPECT_EQ(f.victims, std::vector<uint32_t>{4321});
  ASSERT_EQ(f.victim_keys.size(), 1u);
  EXPECT_EQ(f.victim_keys[0].start_ns, 99u);
  EXPECT_EQ(f.evidence["device"], "dm-0");
  EXPECT_EQ(f.evidence["pid"], 4321);

  auto j = fault_to_json(f, 1'700'000'000'000'000'000ull);
  EXPECT_EQ(j["class"], "hw_disk_error");
  EXPECT_EQ(j["severity"], "critical");
  EXPECT_EQ(j["pid"], 0);
  EXPECT_EQ(j["victims"], nlohmann::json::array({4321}));
  EXPECT_EQ(j["evidence"]["device"], "dm-0");
  EXPECT_EQ(j["evidence"]["comm"], "reader");

  // More errors keep it open (no second record); it resolves after `clear` (120 s) without any.
  b.hw[0].proc = ProcKey{4322, 1};
  EXPECT_TRUE(rig.tick(b).empty());
  auto later = rig.ticks(119);
  EXPECT_TRUE(later.empty());
  later = rig.ticks(2);
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(later[0].evidence["reason"], "cleared");
  EXPECT_EQ(later[0].evidence["device"], "dm-0");  // the resolved line names the device too
}

TEST(HwFaults, TwoDisksAreTwoFaults) {
  Rig rig;
  EventBatch b;
  b.hw.push_back(disk_error("sda", 10, 1, "a"));
  b.hw.push_back(disk_error("sdb", 11, 1, "b"));
  auto out = rig.tick(b);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].subject, out[1].subject);
}

TEST(HwFaults, CorrectedMachineChecksAreARateUncorrectedAreCriticalAtOnce) {
  Rig rig("[rules.hw_mce]\ncount = 3\nwindow = \"60s\"\nclear = \"10s\"\n");
  EventBatch one;
  one.hw.push_back(mce(2, false));
  EXPECT_TRUE(rig.tick(one).empty());
  EXPECT_TRUE(rig.tick(one).empty());  // 2 in the window: below the burst
  rig.ticks(61);                       // they age out
  EXPECT_TRUE(rig.tick(one).empty());
  EXPECT_TRUE(rig.tick(one).empty());
  auto out = rig.tick(one);  // 3 within 60 s
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].cls, FaultClass::HwMce);
  EXPECT_EQ(out[0].severity, Severity::Warning);
  EXPECT_EQ(out[0].evidence["cpu"], 2);
  EXPECT_EQ(out[0].evidence["corrected_in_window"], 3);
  EXPECT_EQ(out[0].evidence["device"], "cpu 2 bank 1");

  EventBatch uc;
  uc.hw.push_back(mce(0, true, 4242));
  out = rig.tick(uc);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].severity, Severity::Critical);
  EXPECT_EQ(out[0].evidence["cpu"], 0);
  EXPECT_EQ(out[0].victims, std::vector<uint32_t>{4242});
}

TEST(HwFaults, PoisonedMemorySigbusNamesTheVictims) {
  Rig rig;
  EventBatch b;
  b.hw.push_back(mce(1, true));
  SignalRecord s;
  s.sig = 7;   // SIGBUS
  s.code = 4;  // BUS_MCEERR_AR
  s.target = ProcKey{300, 3};
  b.signals.push_back(s);
  auto out = rig.tick(b);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].victims, std::vector<uint32_t>{300});
}

TEST(HwFaults, EdacAndAerFollowTheSameRules) {
  Rig rig("[rules.hw_memory_error]\ncount = 5\n[rules.hw_pcie_error]\ncount = 2\n");
  HwEvent ce;
  ce.source = HwEvent::Source::Memory;
  ce.grade = HwEvent::Grade::Corrected;
  ce.device = "mc0 DIMM_A1";
  ce.count = 5;  // one EDAC event can stand for several errors
  ce.fields = {{"label", "DIMM_A1"}, {"type", "corrected"}};
  HwEvent aer;
  aer.source = HwEvent::Source::Pcie;
  aer.grade = HwEvent::Grade::Uncorrected;
  aer.device = "0000:03:00.0";
  aer.fields = {{"pci", "0000:03:00.0"}, {"severity", "fatal"}};
  EventBatch b;
  b.hw = {ce, aer};
  auto out = rig.tick(b);
  ASSERT_EQ(out.size(), 2u);
  std::map<FaultClass, FaultRecord> by;
  for (auto& r : out) by[r.cls] = r;
  EXPECT_EQ(by[FaultClass::HwMemoryError].severity, Severity::Warning);
  EXPECT_EQ(by[FaultClass::HwMemoryError].evidence["label"], "DIMM_A1");
  EXPECT_EQ(by[FaultClass::HwPcieError].severity, Severity::Critical);
  EXPECT_EQ(by[FaultClass::HwPcieError].evidence["device"], "0000:03:00.0");
  EXPECT_EQ(fault_to_json(by[FaultClass::HwPcieError], 0)["class"], "hw_pcie_error");
  EXPECT_EQ(fault_to_json(by[FaultClass::HwMemoryError], 0)["class"], "hw_memory_error");
}

TEST(HwFaults, HwmonLimitsOpenThermalAndVoltageAndHoldUntilTheNextScan) {
  Rig rig;
  SensorReading hot;
  hot.kind = SensorReading::Kind::Temperature;
  hot.sensor = "coretemp/temp1";
  hot.value = 101;
  hot.max = 80.0;
  hot.crit = 100.0;
  SensorReading low;
  low.kind = SensorReading::Kind::Voltage;
  low.sensor = "nct6775/in1";
  low.value = 3.0;
  low.min = 3.1;
  EventBatch scan;
  scan.sensors_scanned = true;
  scan.sensors = {hot, low};
  auto out = rig.tick(scan);
  ASSERT_EQ(out.size(), 2u);
  std::map<FaultClass, FaultRecord> by;
  for (auto& r : out) by[r.cls] = r;
  EXPECT_EQ(by[FaultClass::HwThermal].severity, Severity::Critical);
  EXPECT_EQ(by[FaultClass::HwThermal].evidence["device"], "coretemp/temp1");
  EXPECT_EQ(by[FaultClass::HwThermal].evidence["limit"], "crit");
  EXPECT_EQ(by[FaultClass::HwVoltage].severity, Severity::Warning);
  EXPECT_EQ(by[FaultClass::HwVoltage].evidence["limit"], "min");
  EXPECT_EQ(fault_to_json(by[FaultClass::HwVoltage], 0)["class"], "hw_voltage");
  // No scan for a minute: the crossing holds, nothing resolves.
  EXPECT_TRUE(rig.ticks(60).empty());
  // The next scan has the sensors back in limits (or gone): resolved after clear (30 s).
  EventBatch ok;
  ok.sensors_scanned = true;
  hot.value = 60;
  ok.sensors = {hot};  // the voltage sensor vanished: no fault from that
  EXPECT_TRUE(rig.tick(ok).empty());
  auto resolved = rig.ticks(31);
  EXPECT_EQ(resolved.size(), 2u);
}

TEST(HwFaults, ThermalZoneTemperatureAndTrips) {
  Rig rig("[rules.hw_thermal]\nthreshold = 90\nresolve = 80\n");
  HwEvent t;
  t.source = HwEvent::Source::Thermal;
  t.grade = HwEvent::Grade::Info;
  t.device = "thermal_zone0 (acpitz)";
  t.fields = {{"kind", "temperature"}, {"temp_c", 92.0}};
  EventBatch b;
  b.hw = {t};
  auto out = rig.tick(b);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].evidence["temp_c"], 92.0);
  t.fields["temp_c"] = 85.0;  // between resolve and threshold: stays open
  b.hw = {t};
  EXPECT_TRUE(rig.tick(b).empty());
  EXPECT_TRUE(rig.ticks(40).empty());
  HwEvent trip = t;
  trip.grade = HwEvent::Grade::Uncorrected;
  trip.fields = {{"kind", "trip"}, {"trip_type", "critical"}};
  b.hw = {trip};
  out = rig.tick(b);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].severity, Severity::Critical);
  EXPECT_EQ(out[0].evidence["source"], "thermal_trip");
}

TEST(HwFaults, StateFileKeepsTheSubjectAndVictimKeys) {
  FaultRecord f;
  f.cls = FaultClass::HwDiskError;
  f.rule = "hw_disk_error";
  f.subject = "sda#uncorrected";
  f.victim_keys = {ProcKey{5, 6}};
  f.victims = {5};
  auto back = fault_state_from_json(fault_state_to_json(f));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->subject, "sda#uncorrected");
  ASSERT_EQ(back->victim_keys.size(), 1u);
  EXPECT_EQ(back->victim_keys[0].start_ns, 6u);
}

// ---- config -------------------------------------------------------------------

TEST(HwConfig, HardwareSection) {
  auto c = parse_config(R"(
[hardware]
mce = false
hwmon_root = "/tmp/fake-hwmon"
hwmon_interval = "2s"
)", "t.toml");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c.value().hardware.mce);
  EXPECT_TRUE(c.value().hardware.disk);
  EXPECT_EQ(c.value().hardware.hwmon_root, "/tmp/fake-hwmon");
  EXPECT_EQ(c.value().hardware.hwmon_interval, 2s);
  auto bad = parse_config("[hardware]\nhwmon_interval = \"10ms\"\n", "t.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("at least 100ms"), std::string::npos);
  bad = parse_config("[hardware]\nmcee = true\n", "t.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("unknown key \"mcee\" in [hardware]"), std::string::npos);
  auto rules = parse_config("[rules.hw_disk_error]\nclear = \"5m\"\n", "t.toml");
  ASSERT_TRUE(rules.ok()) << rules.error().message;
}

TEST(HwConfig, SwitchedOffSourcesAreDroppedAndHwmonScansWhenDue) {
  test::FakeTree tree;
  tree.put("hwmon0/name", "coretemp\n");
  tree.put("hwmon0/temp1_input", "40000\n");
  HardwareConfig hc;
  hc.disk = false;
  hc.hwmon_root = tree.root();
  hc.hwmon_interval = 5s;
  HardwareInputs in(hc);
  EventBatch b;
  b.hw.push_back(disk_error("sda", 1, 1, "x"));
  b.hw.push_back(mce(0, true));
  in.prepare(kT0, b);
  ASSERT_EQ(b.hw.size(), 1u);
  EXPECT_EQ(b.hw[0].source, HwEvent::Source::Mce);
  EXPECT_TRUE(b.sensors_scanned);
  EXPECT_EQ(b.sensors.size(), 1u);
  b.clear();
  in.prepare(kT0 + 1 * kSec, b);
  EXPECT_FALSE(b.sensors_scanned);  // not due yet
  in.prepare(kT0 + 5 * kSec, b);
  EXPECT_TRUE(b.sensors_scanned);
  auto st = in.status();
  EXPECT_EQ(st["events_ignored"], 1);
  EXPECT_EQ(st["hwmon"]["sensors"], 1);
  EXPECT_EQ(st["enabled"]["disk"], false);
}

// ---- policies on hardware faults ------------------------------------------------

class FakeActuator : public Actuator {
 public:
  std::vector<std::pair<std::string, ProcKey>> calls;
  ActionOutcome throttle(const Target& t, const ThrottleLimits&, bool) override { return ok("throttle", t); }
  ActionOutcome unthrottle(const Target& t, bool) override { return ok("unthrottle", t); }
  ActionOutcome restart(const Target& t, bool) override { return ok("restart", t); }
  ActionOutcome restore(const Target& t, bool) override { return ok("restore", t); }
  ActionOutcome kill(const Target& t, bool) override { return ok("kill", t); }
  bool alive(const ProcKey&) override { return true; }

 private:
  ActionOutcome ok(const std::string& what, const Target& t) {
    calls.emplace_back(what, t.key);
    return ActionOutcome{ActionResult::Ok, what, {}};
  }
};

class Resolver : public TargetResolver {
 public:
  Target resolve(const FaultRecord& f) override {
    Target t;
    t.key = f.culprit;
    t.comm = f.culprit.tgid == 4321 ? "db-server" : "other";
    return t;
  }
};

TEST(HwPolicy, APolicyForTheClassActsOnTheVictims) {
  auto cfg = parse_config(R"(
[[policy]]
name = "db"
match = { comm = "db-*" }
on.hw_disk_error = ["restore"]
)", "t.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  FakeActuator act;
  Resolver res;
  Handler h(cfg.value(), act, {}, false);
  FaultRecord f;
  f.kind = FaultRecord::Kind::Fault;
  f.cls = FaultClass::HwDiskError;
  f.rule = "hw_disk_error";
  f.subject = "sda#uncorrected";
  f.victims = {4321, 17};
  f.victim_keys = {ProcKey{4321, 9}, ProcKey{17, 2}};  // 17 is not the policy's
  h.on_tick(kT0, {}, {}, res);
  auto out = h.on_tick(kT0 + kSec, {f}, {f}, res);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].target.key, (ProcKey{4321, 9}));
  ASSERT_EQ(act.calls.size(), 1u);
  EXPECT_EQ(act.calls[0].first, "restore");

  // A hardware fault without victims is only alerted: no case, no action.
  FaultRecord lone = f;
  lone.subject = "sdb#uncorrected";
  lone.victims.clear();
  lone.victim_keys.clear();
  out = h.on_tick(kT0 + 2 * kSec, {lone}, {f, lone}, res);
  EXPECT_TRUE(out.actions.empty());
}

}  // namespace
}  // namespace fp
