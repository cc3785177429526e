#include "detect/tracker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include "synthetic.h"

namespace fp {
namespace {

using namespace synthetic;

using namespace std::chrono_literals;



RuleConfig rule(FaultClass cls, std::chrono::nanoseconds hold, std::chrono::nanoseconds clear,
                const char* name = "cpu_runaway") {
  RuleConfig r;
  r.name = name;
  r.cls = cls;
  r.severity = Severity::Warning;
  r.hold = hold;
  r.clear = clear;
  return r;
}

Finding strong(const ProcKey& k, double value = 1.0) {
  Finding f;
  f.culprit = k;
  f.strong = true;
  f.evidence["value"] = value;
  return f;
}

Finding weak(const ProcKey& k) {
  Finding f = strong(k, 0.5);
  f.strong = false;
  return f;
}

// Drives a tracker tick by tick over a table holding the processes it is given.
struct Harness {
  ProcessTable table;
  FaultTracker tracker;
  RuleConfig r;
  uint64_t now = kT0;
  std::vector<FaultRecord> all;

  explicit Harness(RuleConfig rc, FaultTracker::Annotate a = {}) : tracker(std::move(a)), r(std::move(rc)) {}

  void add(const fp_proc& p) { table.update(now, p); }
  // One tick with these findings; returns the records of this tick.
  std::vector<FaultRecord> tick(const std::vector<Finding>& findings) {
    std::vector<FaultRecord> out;
    tracker.step(r, now, findings, table, out);
    table.end_tick(now);
    all.insert(all.end(), out.begin(), out.end());
    now += kTick;
    return out;
  }
  // `n` ticks with the same findings; the number of records they produced.
  size_t ticks(int n, const std::vector<Finding>& findings) {
    size_t records = 0;
    for (int i = 0; i < n; ++i) records += tick(findings).size();
    return records;
  }
};

const ProcKey kA{100, 1};
const ProcKey kB{200, 2};

TEST(FaultTracker, OpensAfterHoldNotBefore) {
  Harness h(rule(FaultClass::CpuRunaway, 5s, 5s));
  h.add(proc(100, 1));
  // The first strong finding starts the hold; 50 more ticks (5 s) pass before it opens.
  EXPECT_EQ(h.ticks(50, {strong(kA)}), 0u);
  auto out = h.tick({strong(kA, 2.0)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Fault);
  EXPECT_EQ(out[0].culprit, kA);
  EXPECT_EQ(out[0].rule, "cpu_runaway");
  EXPECT_EQ(out[0].cls, FaultClass::CpuRunaway);
  EXPECT_EQ(out[0].mono_ns, kT0 + 5 * kSec);
  EXPECT_EQ(out[0].evidence["value"], 2.0);  // the finding that opened it
  EXPECT_EQ(h.tracker.open_count(), 1u);
  // No repeats while it stays open.
  EXPECT_EQ(h.ticks(100, {strong(kA)}), 0u);
  EXPECT_EQ(h.tracker.open_faults().size(), 1u);
}

TEST(FaultTracker, LaterVictimsJoinTheOpenFaultAndItsEvidenceIsTheLatest) {
  Harness h(rule(FaultClass::RunqStarvation, 0s, 5s, "runq_starvation"));
  h.add(proc(100, 1));
  Finding first = strong(kA, 1.0);
  first.victims = {83};  // a kernel thread that waited first
  first.victim_keys = {ProcKey{83, 3}};
  ASSERT_EQ(h.tick({first}).size(), 1u);
  Finding later = strong(kA, 3.0);
  later.victims = {300, 83};
  later.victim_keys = {ProcKey{300, 4}, ProcKey{83, 3}};
  EXPECT_EQ(h.ticks(3, {later}), 0u);  // no second line
  auto open = h.tracker.open_faults();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].victims, (std::vector<uint32_t>{83, 300}));
  EXPECT_EQ(open[0].victim_keys, (std::vector<ProcKey>{ProcKey{83, 3}, ProcKey{300, 4}}));
  EXPECT_EQ(open[0].evidence["value"], 3.0);
  EXPECT_EQ(h.all[0].evidence["value"], 1.0);  // the emitted line stays the opening finding
  // The resolved line lists every victim the fault hurt.
  h.ticks(60, {});
  ASSERT_EQ(h.all.size(), 2u);
  EXPECT_EQ(h.all[1].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(h.all[1].victims, (std::vector<uint32_t>{83, 300}));
  // Bounded: a fault over a whole host keeps its first kMaxVictims victims.
  Finding many = strong(kA);
  for (uint32_t v = 1000; v < 1000 + 2 * FaultTracker::kMaxVictims; ++v) many.victims.push_back(v);
  ASSERT_EQ(h.tick({many}).size(), 1u);
  h.tick({many});
  EXPECT_EQ(h.tracker.open_faults()[0].victims.size(), FaultTracker::kMaxVictims);
}

TEST(FaultTracker, ShortSpikesNeverOpen) {
  Harness h(rule(FaultClass::CpuRunaway, 5s, 5s));
  h.add(proc(100, 1));
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(h.ticks(40, {strong(kA)}), 0u);  // 4 s: short of the hold
    EXPECT_EQ(h.ticks(1, {}), 0u);             // one clean tick breaks the run
  }
  // A weak finding breaks it too (it only keeps open faults open).
  EXPECT_EQ(h.ticks(40, {strong(kA)}), 0u);
  EXPECT_EQ(h.ticks(1, {weak(kA)}), 0u);
  EXPECT_EQ(h.ticks(40, {strong(kA)}), 0u);
  EXPECT_TRUE(h.all.empty());
  EXPECT_EQ(h.tracker.open_count(), 0u);
}

TEST(FaultTracker, WeakFindingsNeverOpen) {
  Harness h(rule(FaultClass::CpuRunaway, 0s, 5s));
  h.add(proc(100, 1));
  EXPECT_EQ(h.ticks(100, {weak(kA)}), 0u);
}

TEST(FaultTracker, HysteresisThenResolveAfterClear) {
  Harness h(rule(FaultClass::CpuRunaway, 1s, 5s));
  h.add(proc(100, 1));
  EXPECT_EQ(h.ticks(11, {strong(kA)}), 1u);
  uint64_t opened = h.all[0].mono_ns;
  // Between resolve and threshold: stays open, however long.
  EXPECT_EQ(h.ticks(300, {weak(kA)}), 0u);
  uint64_t last_finding = h.now - kTick;
  // Clean ticks: resolves once `clear` passed since the last finding, not before.
  EXPECT_EQ(h.ticks(49, {}), 0u);
  auto out = h.tick({});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].mono_ns, last_finding + 5 * kSec);
  EXPECT_EQ(out[0].opened_mono_ns, opened);
  EXPECT_EQ(out[0].culprit, kA);
  EXPECT_EQ(out[0].evidence["reason"], "cleared");
  EXPECT_EQ(h.tracker.open_count(), 0u);
  // A dip shorter than clear does not resolve: it is the same fault.
  EXPECT_EQ(h.ticks(11, {strong(kA)}), 1u);
  EXPECT_EQ(h.ticks(30, {}), 0u);
  EXPECT_EQ(h.ticks(10, {strong(kA)}), 0u);
  EXPECT_EQ(h.tracker.open_count(), 1u);
}

TEST(FaultTracker, ImmediateOpensAtOnce) {
  Harness h(rule(FaultClass::IoError, 30s, 0s, "io_error"));
  h.add(proc(100, 1));
  Finding f = strong(kA);
  f.immediate = true;
  f.severity = Severity::Critical;
  f.victims = {7, 8};
  auto out = h.tick({f});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].severity, Severity::Critical);  // raised above the rule's warning
  EXPECT_EQ(out[0].victims, (std::vector<uint32_t>{7, 8}));
  // clear = 0: resolves at the first tick without a finding.
  out = h.tick({});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].victims, (std::vector<uint32_t>{7, 8}));
}

TEST(FaultTracker, OneFaultPerRuleAndCulprit) {
  Harness h(rule(FaultClass::CpuRunaway, 0s, 1s));
  h.add(proc(100, 1));
  h.add(proc(200, 2));
  Finding f1 = weak(kA);
  Finding f2 = strong(kA, 3.0);
  Finding f3 = strong(kA, 4.0);
  auto out = h.tick({f1, f2, f3, strong(kB)});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].culprit, kA);
  EXPECT_EQ(out[0].evidence["value"], 3.0);  // the first of the strongest
  EXPECT_EQ(out[1].culprit, kB);
  // Another rule is tracked apart.
  RuleConfig other = rule(FaultClass::CpuRunaway, 0s, 1s, "batch-cpu");
  std::vector<FaultRecord> more;
  h.tracker.step(other, h.now, {strong(kA)}, h.table, more);
  EXPECT_EQ(more.size(), 1u);
  EXPECT_EQ(h.tracker.open_count(), 3u);
}

TEST(FaultTracker, CulpritExitResolvesExceptWhereExitIsTheFault) {
  Harness h(rule(FaultClass::CpuRunaway, 0s, 30s));
  fp_proc a = proc(100, 1);
  h.add(a);
  EXPECT_EQ(h.ticks(1, {strong(kA)}), 1u);
  ExitRecord e;
  e.ts_ns = h.now;
  e.final = a;
  h.table.exited(h.now, e);
  // Still reported by a detector whose window remembers it: resolved anyway, and not reopened.
  auto out = h.tick({strong(kA)});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].evidence["reason"], "process exited");
  EXPECT_EQ(h.ticks(10, {strong(kA)}), 0u);

  for (FaultClass cls : {FaultClass::Crash, FaultClass::CrashLoop, FaultClass::OomKill}) {
    Harness c(rule(cls, 0s, 10s, "crash"));
    Finding f = strong(kA);
    f.immediate = true;
    // The culprit is already gone when the event arrives.
    EXPECT_EQ(c.ticks(1, {f}), 1u);
    EXPECT_EQ(c.ticks(99, {}), 0u);  // open for the whole clear period
    auto res = c.tick({});
    ASSERT_EQ(res.size(), 1u);
    EXPECT_EQ(res[0].evidence["reason"], "cleared");
    EXPECT_EQ(res[0].mono_ns - res[0].opened_mono_ns, 10 * kSec);
  }
}

TEST(FaultTracker, GoneProcessNeverOpensAfterHold) {
  Harness h(rule(FaultClass::CpuRunaway, 1s, 1s));
  fp_proc a = proc(100, 1);
  h.add(a);
  EXPECT_EQ(h.ticks(5, {strong(kA)}), 0u);
  // The pid is reused; the detector (wrongly) keeps reporting the old key.
  h.add(proc(100, 5, "other"));
  EXPECT_EQ(h.ticks(20, {strong(kA)}), 0u);
  EXPECT_TRUE(h.all.empty());
}

TEST(FaultTracker, RetireResolvesRemovedRules) {
  Harness h(rule(FaultClass::CpuRunaway, 0s, 30s));
  h.add(proc(100, 1));
  EXPECT_EQ(h.ticks(1, {strong(kA)}), 1u);
  std::vector<FaultRecord> out;
  h.tracker.retire([](const std::string& name, FaultClass) { return name == "cpu_runaway"; }, h.now, "rule removed",
                   out);
  EXPECT_TRUE(out.empty());
  h.tracker.retire([](const std::string&, FaultClass) { return false; }, h.now, "rule removed", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].evidence["reason"], "rule removed");
  EXPECT_EQ(h.tracker.open_count(), 0u);
}

TEST(FaultTracker, AnnotatedNamesOutliveTheProcess) {
  Harness h(rule(FaultClass::IoError, 0s, 0s, "io_error"), [](FaultRecord& r) {
    r.comm = "dd";
    r.cgroup = "/system.slice/backup.service";
  });
  Finding f = strong(kA);
  f.immediate = true;
  auto out = h.tick({f});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].comm, "dd");
  out = h.tick({});  // the culprit was never in the table: gone, resolved
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].comm, "dd");
  EXPECT_EQ(out[0].cgroup, "/system.slice/backup.service");
}


// A restarted daemon takes over a fault its predecessor left open: no second
// "fault" line, and it resolves on the rule's clear time like any other.
TEST(FaultTracker, AdoptedFaultStaysOpenThenClears) {
  Harness h(rule(FaultClass::CpuRunaway, 1s, 5s));
  h.add(proc(100, 1));
  FaultRecord old;
  old.kind = FaultRecord::Kind::Fault;
  old.cls = FaultClass::CpuRunaway;
  old.rule = "cpu_runaway";
  old.culprit = kA;
  old.mono_ns = kT0 - 60 * kSec;
  old.evidence["value"] = 3.0;
  EXPECT_TRUE(h.tracker.adopt(old, h.now));
  EXPECT_FALSE(h.tracker.adopt(old, h.now));  // already tracked
  EXPECT_EQ(h.tracker.open_count(), 1u);
  EXPECT_EQ(h.ticks(100, {strong(kA)}), 0u);  // still open, no repeat
  EXPECT_EQ(h.tracker.open_faults()[0].mono_ns, kT0 - 60 * kSec);  // the original opening
  EXPECT_EQ(h.ticks(49, {}), 0u);
  auto out = h.tick({});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].kind, FaultRecord::Kind::Resolved);
  EXPECT_EQ(out[0].opened_mono_ns, kT0 - 60 * kSec);
}

TEST(FaultState, JsonRoundTripKeepsEveryField) {
  FaultRecord r;
  r.cls = FaultClass::Hang;
  r.severity = Severity::Critical;
  r.rule = "hang";
  r.culprit = ProcKey{4242, 123456789};
  r.mono_ns = 987654321;
  r.comm = "db";
  r.cgroup = "/system.slice/db.service";
  r.unit = "db.service";
  r.victims = {1, 2};
  r.evidence["dstate_s"] = 25;
  auto back = fault_state_from_json(nlohmann::json::parse(fault_state_to_json(r).dump()));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->cls, r.cls);
  EXPECT_EQ(back->severity, r.severity);
  EXPECT_EQ(back->rule, r.rule);
  EXPECT_EQ(back->culprit, r.culprit);
  EXPECT_EQ(back->mono_ns, r.mono_ns);
  EXPECT_EQ(back->comm, r.comm);
  EXPECT_EQ(back->cgroup, r.cgroup);
  EXPECT_EQ(back->unit, r.unit);
  EXPECT_EQ(back->victims, r.victims);
  EXPECT_EQ(back->evidence, r.evidence);
  EXPECT_FALSE(fault_state_from_json(nlohmann::json::parse(R"({"class":"nope","rule":"x","pid":1,"start_ns":1})")));
  EXPECT_FALSE(fault_state_from_json(nlohmann::json::parse(R"({"class":"hang","pid":1,"start_ns":1})")));
  EXPECT_FALSE(fault_state_from_json(nlohmann::json::parse(R"([1,2])")));
}

}  // namespace
}  // namespace fp
