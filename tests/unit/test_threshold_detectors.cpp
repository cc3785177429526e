// The threshold detectors on synthetic process streams fed through a real
// ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "detect/detectors.h"
#include "detect/tracker.h"
#include "detect_sim.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using sim::kMs;
using sim::kSec;
using sim::Load;
using sim::Sim;

// The built-in rules as docs/rules.md lists them.
RuleConfig rule(FaultClass cls, double threshold, double resolve, std::chrono::nanoseconds window,
                uint32_t count = 0) {
  RuleConfig r;
  r.cls = cls;
  r.threshold = threshold;
  r.resolve = resolve;
  r.window = window;
  r.count = count;
  return r;
}
RuleConfig cpu_rule() { return rule(FaultClass::CpuRunaway, 0.9, 0.5, 1s); }
RuleConfig runq_rule() { return rule(FaultClass::RunqStarvation, 100, 50, 10s, 20); }
RuleConfig leak_rule() { return rule(FaultClass::MemoryLeak, 1.0, 0.1, 60s); }
RuleConfig pressure_rule() { return rule(FaultClass::MemoryPressure, 0.10, 0.02, 10s); }
RuleConfig storm_rule() { return rule(FaultClass::IoStorm, 50, 20, 10s, 5); }
RuleConfig io_latency_rule() { return rule(FaultClass::IoLatency, 200, 100, 10s, 5); }
RuleConfig fork_rule() {
  RuleConfig r = rule(FaultClass::ForkBomb, 100, 20, 1s);
  r.severity = Severity::Critical;
  return r;
}
RuleConfig anomaly_rule() { return rule(FaultClass::Anomaly, 8, 4, 1s, 60); }

// A detector's findings through the fault tracker, tick by tick, as the
// engine runs them: when faults opened (the hold applied).
struct WithTracker {
  WithTracker(Sim& sim, RuleConfig r) : s(sim), rule(std::move(r)) {}
  Sim& s;
  RuleConfig rule;
  FaultTracker tracker;
  std::vector<FaultRecord> opened;

  void tick() {
    std::vector<Finding> findings = s.tick();
    std::vector<FaultRecord> out;
    tracker.step(rule, s.now, findings, s.table, out);
    for (FaultRecord& r : out)
      if (r.kind == FaultRecord::Kind::Fault) opened.push_back(std::move(r));
  }
  void run(double seconds) {
    for (int i = 0, n = static_cast<int>(std::llround(seconds * kSec / s.world.tick_ns)); i < n; ++i) tick();
  }
};

std::vector<uint32_t> sorted(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ---- cpu_runaway ----

TEST(CpuRunaway, StrongOnceTheWindowIsFull) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  s.run(0.9);  // the window (1 s) is not full yet
  EXPECT_FALSE(s.seen[500].any());
  s.run(0.5);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->culprit, s.key(500));
  EXPECT_EQ(f->evidence["metric"], "cpu_cores");
  EXPECT_NEAR(f->evidence["value"].get<double>(), 1.0, 0.01);
  EXPECT_EQ(f->evidence["threshold"], 0.9);
  EXPECT_EQ(f->evidence["window_ms"], 1000);
  EXPECT_TRUE(f->victims.empty());
}

TEST(CpuRunaway, AllThreadsCount) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "java");
  s.set_load(500, Load{.cores = 3.0});
  s.run(2);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_NEAR(f->evidence["value"].get<double>(), 3.0, 0.01);
}

TEST(CpuRunaway, BurstShorterThanTheWindowIsNothing) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "build");
  s.set_load(500, Load{.cores = 0.05});
  s.run(5);
  s.set_load(500, Load{.cores = 1.0});
  s.run(0.4);  // 0.4 s at a full core: 0.4 + 0.6 * 0.05 cores over any 1 s window
  s.set_load(500, Load{.cores = 0.05});
  s.run(3);
  EXPECT_FALSE(s.seen[500].any());
}

TEST(CpuRunaway, WeakInTheHysteresisBand) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 0.7});
  s.run(5);
  EXPECT_EQ(s.seen[500].strong, 0);
  EXPECT_GT(s.seen[500].weak, 0);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_FALSE(f->strong);
  s.set_load(500, Load{.cores = 0.3});
  s.run(2);
  EXPECT_EQ(s.finding_for(500), nullptr);
}

TEST(CpuRunaway, ProtectedProcessesAreNeverCulprits) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.world.self_tgid = 700;
  s.protected_comms = {"sshd"};
  s.spawn(1, "systemd", 0);
  s.spawn(2, "kworker/0:1", 0, FP_PROC_KTHREAD);
  s.spawn(700, "faultprobed");
  s.spawn(800, "sshd");
  s.spawn(900, "spin");
  for (uint32_t pid : {1u, 2u, 700u, 800u, 900u}) s.set_load(pid, Load{.cores = 1.0});
  s.run(3);
  for (uint32_t pid : {1u, 2u, 700u, 800u}) EXPECT_FALSE(s.seen[pid].any()) << pid;
  EXPECT_GT(s.seen[900].strong, 0);
}

TEST(CpuRunaway, RuleMatchFiltersCulprits) {
  RuleConfig r = cpu_rule();
  r.name = "batch-cpu";
  r.match.comm = "batch-*";
  Sim s;
  s.add(make_cpu_runaway(r));
  s.spawn(500, "stress");
  s.spawn(501, "batch-7");
  s.set_load(500, Load{.cores = 1.0});
  s.set_load(501, Load{.cores = 1.0});
  s.run(2);
  EXPECT_FALSE(s.seen[500].any());
  EXPECT_GT(s.seen[501].strong, 0);
}

TEST(CpuRunaway, RuleMatchOnProcInfo) {
  RuleConfig r = cpu_rule();
  r.match.uid = 1000;
  Sim s;
  s.add(make_cpu_runaway(r));
  s.spawn(500, "spin");
  s.spawn(501, "spin");
  for (uint32_t pid : {500u, 501u}) {
    s.infos.by_pid[pid].found = true;
    s.infos.by_pid[pid].comm = "spin";
  }
  s.infos.by_pid[500].uid = 0;
  s.infos.by_pid[501].uid = 1000;
  s.set_load(500, Load{.cores = 1.0});
  s.set_load(501, Load{.cores = 1.0});
  s.run(2);
  EXPECT_FALSE(s.seen[500].any());
  EXPECT_GT(s.seen[501].strong, 0);
}

TEST(CpuRunaway, PidReuseStartsFresh) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  s.run(3);
  ProcKey old_key = s.key(500);
  ASSERT_NE(s.finding_for(500), nullptr);
  // The pid goes to an idle process whose counters restart at zero; the old
  // process's exit was never seen.
  s.reuse_pid(500, "sleeper");
  s.seen.clear();
  s.run(3);
  EXPECT_FALSE(s.seen[500].any());
  EXPECT_NE(s.key(500), old_key);
  // And a new hog is judged on its own full window only.
  s.reuse_pid(500, "spin2");
  s.set_load(500, Load{.cores = 1.0});
  s.run(0.9);
  EXPECT_FALSE(s.seen[500].any());
  s.run(0.5);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->culprit, s.key(500));
}

TEST(CpuRunaway, ExitedProcessIsNotReported) {
  Sim s;
  s.add(make_cpu_runaway(cpu_rule()));
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  s.run(2);
  ASSERT_NE(s.finding_for(500), nullptr);
  s.exit(500);
  s.tick();
  EXPECT_EQ(s.finding_for(500), nullptr);
}

// With a hold at least as long as the window, a young process's cores are
// taken over its life: the hold starts with the load, not a window later,
// and the fault opens after the hold (it used to be hold + window).
TEST(CpuRunaway, AYoungProcessStartsTheHoldWithItsLoadWhenTheHoldCoversTheWindow) {
  RuleConfig r = cpu_rule();  // window 1 s
  r.hold = 2s;
  Sim s;
  s.add(make_cpu_runaway(r));
  WithTracker t{s, r};
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  const uint64_t start = s.now;
  t.tick();
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_NEAR(f->evidence["value"].get<double>(), 1.0, 0.01);
  EXPECT_EQ(f->evidence["span_ms"], 100);  // its life so far
  t.run(3);
  ASSERT_EQ(t.opened.size(), 1u);
  EXPECT_EQ(t.opened[0].culprit, s.key(500));
  EXPECT_LE(t.opened[0].mono_ns - start, 2 * kSec + 2 * sim::kTick);
}

// The hold must still be held: a young process that spins for less than the
// hold (but longer than the window) opens nothing.
TEST(CpuRunaway, AYoungBurstShorterThanTheHoldOpensNothing) {
  RuleConfig r = cpu_rule();
  r.hold = 2s;
  Sim s;
  s.add(make_cpu_runaway(r));
  WithTracker t{s, r};
  s.spawn(500, "cc1plus");
  s.set_load(500, Load{.cores = 1.0});
  t.run(1.5);
  s.set_load(500, Load{.cores = 0.05});
  t.run(3);
  EXPECT_TRUE(t.opened.empty());
}

// A young process that spun and went idle does not change, so its window is
// not looked at again by itself; its finding over its growing life must not
// stay as it was until the window is full.
TEST(CpuRunaway, AYoungProcessThatStopsLosesItsFindingAsItsLifeGrows) {
  RuleConfig r = cpu_rule();
  r.hold = 2s;
  Sim s;
  s.add(make_cpu_runaway(r));
  s.spawn(500, "make");
  s.set_load(500, Load{.cores = 1.0});
  s.run(0.3);
  EXPECT_NE(s.finding_for(500), nullptr);
  s.set_load(500, Load{.cores = 0});
  s.run(0.4);  // 0.3 s of CPU over 0.7 s: under the resolve threshold (0.5)
  EXPECT_EQ(s.finding_for(500), nullptr);
}

// A hold shorter than the window would not reach a full window by itself:
// only full windows count then.
TEST(CpuRunaway, AShortHoldWaitsForAFullWindow) {
  RuleConfig r = cpu_rule();
  r.hold = 500ms;
  Sim s;
  s.add(make_cpu_runaway(r));
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  s.run(0.9);
  EXPECT_FALSE(s.seen[500].any());
  s.run(0.2);
  EXPECT_NE(s.finding_for(500), nullptr);
}

// ---- runq_starvation ----

// A 4-CPU host: `hog` runs 4 busy threads; two victims wait ~200 ms for a CPU
// 30 times a second; a bystander runs a little with short waits.
Sim& starved_host(Sim& s, double hog_cores = 3.8) {
  s.add(make_runq_starvation(runq_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.spawn(201, "db");
  s.spawn(300, "cron");
  s.set_load(100, Load{.cores = hog_cores});
  s.set_load(200, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
  s.set_load(201, Load{.cores = 0.03, .runq_waits = 3, .runq_wait_ns = 180 * kMs});
  s.set_load(300, Load{.cores = 0.1, .runq_waits = 5, .runq_wait_ns = 2 * kMs});
  return s;
}

TEST(RunqStarvation, BlamesTheCpuHolderWithAllVictims) {
  Sim s;
  starved_host(s);
  s.run(12);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_EQ(sorted(f.victims), (std::vector<uint32_t>{200, 201}));
  EXPECT_EQ(f.evidence["metric"], "victim_runq_p99_ms");
  EXPECT_GE(f.evidence["value"].get<double>(), 100);
  EXPECT_EQ(f.evidence["resource"], "cpu_ns");
  EXPECT_EQ(f.evidence["culprit"]["pid"], 100);
  // 3.8 of 3.98 cores in the window.
  EXPECT_NEAR(f.evidence["culprit"]["share"].get<double>(), 3.8 / 3.98, 0.01);
  EXPECT_NEAR(f.evidence["culprit_cores"].get<double>(), 3.8, 0.05);
  EXPECT_EQ(f.evidence["runner_up"]["pid"], 300);  // victims are not runner-ups
  ASSERT_EQ(f.evidence["victims"].size(), 2u);
  EXPECT_EQ(f.evidence["victims"][0]["pid"], 200);  // worst first
  EXPECT_GE(f.evidence["victims"][0]["runq_p99_ms"].get<double>(), 100);
  EXPECT_GE(f.evidence["victims"][0]["waits"].get<uint64_t>(), 20u);
}

TEST(RunqStarvation, TooFewWaitsMakeNoVictim) {
  Sim s;
  s.add(make_runq_starvation(runq_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 3.8});
  // 1 long wait per second: 10 in the window, below count = 20.
  s.spawn(201, "idle");
  s.set_load(200, Load{.cores = 0.01});
  s.run(1);
  for (int i = 0; i < 120; ++i) {
    s.set_load(201, Load{.runq_waits = i % 10 == 0 ? 1u : 0u, .runq_wait_ns = 300 * kMs});
    s.tick();
  }
  EXPECT_TRUE(s.seen.empty());
}

TEST(RunqStarvation, WeakInTheHysteresisBand) {
  Sim s;
  s.add(make_runq_starvation(runq_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 3.8});
  // 40 ms waits: the log2 bucket [32, 64) ms puts the p99 near 64 ms.
  s.set_load(200, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 40 * kMs});
  s.run(12);
  EXPECT_EQ(s.seen[100].strong, 0);
  EXPECT_GT(s.seen[100].weak, 0);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_FALSE(s.findings[0].strong);
  EXPECT_EQ(s.findings[0].victims, (std::vector<uint32_t>{200}));
}

TEST(RunqStarvation, ProtectedHogIsSkippedAndATrivialConsumerIsNotBlamed) {
  Sim s;
  s.protected_comms = {"hog"};
  starved_host(s);
  s.run(12);
  // The next consumer (cron, 0.1 core) neither used half a core nor the most CPU.
  EXPECT_TRUE(s.findings.empty());
  EXPECT_TRUE(s.seen.empty());
}

TEST(RunqStarvation, RuleMatchExcludesTheCulprit) {
  RuleConfig r = runq_rule();
  r.match.comm = "batch-*";
  Sim s;
  s.add(make_runq_starvation(r));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 3.8});
  s.set_load(200, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

TEST(RunqStarvation, ShortContentionIsNotEnoughWaits) {
  Sim s;
  starved_host(s);
  s.set_load(200, Load{.cores = 0.05});
  s.set_load(201, Load{.cores = 0.03});
  s.run(10);
  // 0.5 s of long waits: 15 waits, under count = 20, for each victim.
  s.set_load(200, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
  s.set_load(201, Load{.cores = 0.03, .runq_waits = 3, .runq_wait_ns = 180 * kMs});
  s.run(0.5);
  s.set_load(200, Load{.cores = 0.05});
  s.set_load(201, Load{.cores = 0.03});
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

// ---- memory_leak ----

TEST(MemoryLeak, SteadyGrowthOverAFullWindow) {
  Sim s;
  s.add(make_memory_leak(leak_rule()));
  s.spawn(500, "leaky");
  s.set_load(500, Load{.cores = 0.1, .rss_bytes = 200'000});  // 2 MB/s
  s.run(59);
  EXPECT_FALSE(s.seen[500].any()) << "the 60 s window is not full yet";
  s.run(2);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "rss_growth_mb_per_s");
  EXPECT_NEAR(f->evidence["value"].get<double>(), 2.0, 0.05);
  EXPECT_GE(f->evidence["growth_bytes"].get<uint64_t>(), uint64_t{64} << 20);
  EXPECT_GE(f->evidence["growing_fraction"].get<double>(), 0.8);
}

TEST(MemoryLeak, SlowGrowthIsOnlyWeak) {
  Sim s;
  s.add(make_memory_leak(leak_rule()));
  s.spawn(500, "cache");
  s.set_load(500, Load{.cores = 0.1, .rss_bytes = 50'000});  // 0.5 MB/s, 30 MB a minute
  s.run(65);
  EXPECT_EQ(s.seen[500].strong, 0);
  EXPECT_GT(s.seen[500].weak, 0);
}

TEST(MemoryLeak, OneBigAllocationIsNoLeak) {
  Sim s;
  s.add(make_memory_leak(leak_rule()));
  s.spawn(500, "loader");
  s.set_load(500, Load{.cores = 0.1});
  s.run(20);
  s.set_load(500, Load{.cores = 0.1, .rss_bytes = 200 << 20});  // 200 MiB at once
  s.tick();
  s.set_load(500, Load{.cores = 0.1});
  s.run(60);
  EXPECT_EQ(s.seen[500].strong, 0);
}

TEST(MemoryLeak, JumpyGrowthIsOnlyWeak) {
  Sim s;
  s.add(make_memory_leak(leak_rule()));
  s.spawn(500, "batch");
  // 4 MB/s for 1 s, flat for 3 s: 1 MB/s on average, 60 MB over a minute,
  // growing in a quarter of the seconds.
  for (int sec = 0; sec < 70; ++sec) {
    s.set_load(500, Load{.cores = 0.1, .rss_bytes = sec % 4 == 0 ? 400'000 : 0});
    s.run(1);
  }
  EXPECT_EQ(s.seen[500].strong, 0);
  EXPECT_GT(s.seen[500].weak, 0);
}

TEST(MemoryLeak, ProtectedAndExcludedByMatch) {
  RuleConfig r = leak_rule();
  r.match.comm = "app*";
  Sim s;
  s.add(make_memory_leak(r));
  s.spawn(1, "systemd", 0);
  s.spawn(500, "leaky");
  s.spawn(501, "app-server");
  for (uint32_t pid : {1u, 500u, 501u}) s.set_load(pid, Load{.cores = 0.1, .rss_bytes = 200'000});
  s.run(62);
  EXPECT_FALSE(s.seen[1].any());
  EXPECT_FALSE(s.seen[500].any());
  EXPECT_GT(s.seen[501].strong, 0);
}

// ---- memory_pressure ----

TEST(MemoryPressure, BlamesTheAllocatorWithTheStalledVictims) {
  Sim s;
  s.add(make_memory_pressure(pressure_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.spawn(300, "cron");
  s.set_load(100, Load{.cores = 1, .rss_bytes = 5'000'000, .page_faults = 1200});  // 50 MB/s
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 20 * kMs});                      // 20 % stalled
  s.set_load(300, Load{.cores = 0.1, .rss_bytes = 100'000, .page_faults = 25});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_EQ(f.victims, (std::vector<uint32_t>{200}));
  EXPECT_EQ(f.evidence["metric"], "victim_reclaim_share");
  EXPECT_NEAR(f.evidence["value"].get<double>(), 0.2, 0.01);
  EXPECT_EQ(f.evidence["resource"], "rss_growth_bytes");
  EXPECT_NEAR(f.evidence["culprit"]["share"].get<double>(), 50.0 / 51.0, 0.01);
  EXPECT_EQ(f.evidence["runner_up"]["pid"], 300);
  EXPECT_NEAR(f.evidence["victims"][0]["reclaim_share"].get<double>(), 0.2, 0.01);
}

TEST(MemoryPressure, TheAllocatorCanBeItsOwnVictim) {
  Sim s;
  s.add(make_memory_pressure(pressure_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 1, .rss_bytes = 5'000'000, .reclaim_ns = 30 * kMs});
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 15 * kMs});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].victims, (std::vector<uint32_t>{100, 200}));
}

TEST(MemoryPressure, PageFaultsWhenNobodyGrew) {
  Sim s;
  s.add(make_memory_pressure(pressure_rule()));
  s.spawn(100, "mapper");
  s.spawn(200, "web");
  s.spawn(300, "cron");
  s.set_load(100, Load{.cores = 1, .page_faults = 5000});
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 20 * kMs, .page_faults = 100});
  s.set_load(300, Load{.cores = 0.1, .page_faults = 10});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].evidence["resource"], "page_faults");
}

TEST(MemoryPressure, WeakInTheHysteresisBandAndNothingBelow) {
  Sim s;
  s.add(make_memory_pressure(pressure_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 1, .rss_bytes = 5'000'000});
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 5 * kMs});  // 5 %
  s.run(11);
  EXPECT_EQ(s.seen[100].strong, 0);
  EXPECT_GT(s.seen[100].weak, 0);
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 1 * kMs});  // 1 %
  s.run(11);
  EXPECT_TRUE(s.findings.empty());
}

TEST(MemoryPressure, ShortStallIsNothing) {
  Sim s;
  s.add(make_memory_pressure(pressure_rule()));
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 1, .rss_bytes = 5'000'000});
  s.set_load(200, Load{.cores = 0.2});
  s.run(5);
  s.set_load(200, Load{.cores = 0.2, .reclaim_ns = 50 * kMs});  // half of every tick, for 0.2 s
  s.run(0.2);
  s.set_load(200, Load{.cores = 0.2});
  s.run(11);
  EXPECT_FALSE(s.seen[100].any());  // 0.1 s stall in 10 s: 1 %
}

// ---- io_storm ----

Sim& io_host(Sim& s, uint64_t culprit_bytes_per_tick = 10'000'000) {
  s.add(make_io_storm(storm_rule()));
  s.spawn(100, "dd");
  s.spawn(200, "postgres");
  s.spawn(300, "logger");
  s.set_load(100, Load{.io_bytes = culprit_bytes_per_tick, .io_reqs = 80, .io_lat_ns = 20 * kMs});
  s.set_load(200, Load{.io_bytes = 40'000, .io_reqs = 2, .io_lat_ns = 120 * kMs});
  s.set_load(300, Load{.io_bytes = 4'000, .io_reqs = 1, .io_lat_ns = 1 * kMs});
  return s;
}

TEST(IoStorm, BlamesTheFloodWhileOthersWait) {
  Sim s;
  io_host(s);  // 100 MB/s
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_EQ(f.victims, (std::vector<uint32_t>{200}));  // the logger's IO is fast
  EXPECT_EQ(f.evidence["metric"], "io_mb_per_s");
  EXPECT_NEAR(f.evidence["value"].get<double>(), 100, 1);
  EXPECT_EQ(f.evidence["resource"], "io_bytes");
  EXPECT_GT(f.evidence["culprit"]["share"].get<double>(), 0.99);
  EXPECT_EQ(f.evidence["runner_up"]["pid"], 200);
  EXPECT_GE(f.evidence["victims"][0]["io_p99_ms"].get<double>(), 50);
  EXPECT_GE(f.evidence["victims"][0]["requests"].get<uint64_t>(), 5u);
}

// A buffered writer: it dirties pages, the flusher (a kernel thread) submits
// them in slow requests. The writer is named; the flusher is neither culprit
// nor victim.
Sim& buffered_host(Sim& s) {
  s.add(make_io_storm(storm_rule()));
  s.spawn(100, "dd");
  s.spawn(7, "kworker/u8:2", 2, FP_PROC_KTHREAD);
  s.spawn(300, "logger");
  s.set_load(100, Load{.dirtied_bytes = 10'000'000});
  s.set_load(7, Load{.io_reqs = 80, .io_lat_ns = 120 * kMs, .flushed_bytes = 10'000'000});
  s.set_load(300, Load{.io_bytes = 4'000, .io_reqs = 1, .io_lat_ns = 1 * kMs});
  return s;
}

TEST(IoStorm, NamesTheBufferedWriterNotTheFlusher) {
  Sim s;
  buffered_host(s);
  s.spawn(200, "postgres");
  s.set_load(200, Load{.io_bytes = 40'000, .io_reqs = 2, .io_lat_ns = 120 * kMs});
  s.run(11);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_EQ(f.victims, (std::vector<uint32_t>{200}));  // not the flusher, slow as its requests are
  EXPECT_NEAR(f.evidence["value"].get<double>(), 100, 1);
  EXPECT_GT(f.evidence["culprit_write_bytes"].get<uint64_t>(), 900'000'000u);
  EXPECT_EQ(f.evidence["culprit_submitted_bytes"], 0u);
}

TEST(IoStorm, ABufferedCopyAloneIsNoStorm) {
  Sim s;
  buffered_host(s);  // the flusher's requests are slow, but they are the copy's own
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

TEST(IoStorm, ABigCopyAloneIsNoStorm) {
  Sim s;
  s.add(make_io_storm(storm_rule()));
  s.spawn(100, "cp");
  s.spawn(300, "logger");
  s.set_load(100, Load{.io_bytes = 20'000'000, .io_reqs = 80, .io_lat_ns = 60 * kMs});
  s.set_load(300, Load{.io_bytes = 4'000, .io_reqs = 1, .io_lat_ns = 1 * kMs});
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

TEST(IoStorm, NoDominantShareNoStorm) {
  Sim s;
  io_host(s);
  s.spawn(101, "dd2");
  s.set_load(101, Load{.io_bytes = 10'000'000, .io_reqs = 80, .io_lat_ns = 20 * kMs});  // each just under half
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

TEST(IoStorm, VictimNeedsEnoughRequests) {
  Sim s;
  io_host(s);
  // 3 slow requests in 10 s: below count = 5.
  s.set_load(200, Load{});
  s.run(1);
  for (int i = 0; i < 110; ++i) {
    s.set_load(200, Load{.io_bytes = 4096, .io_reqs = i % 40 == 0 ? 1u : 0u, .io_lat_ns = 150 * kMs});
    s.tick();
  }
  EXPECT_TRUE(s.seen.empty());
}

TEST(IoStorm, WeakInTheHysteresisBand) {
  Sim s;
  io_host(s, 3'000'000);  // 30 MB/s
  s.run(11);
  EXPECT_EQ(s.seen[100].strong, 0);
  EXPECT_GT(s.seen[100].weak, 0);
}

TEST(IoStorm, ProtectedFlooderIsNotBlamed) {
  Sim s;
  s.protected_comms = {"dd"};
  io_host(s);
  s.run(11);
  // The next IO user holds well under half of the bytes.
  EXPECT_TRUE(s.seen.empty());
}

// ---- io_latency ----

TEST(IoLatency, SlowOwnIo) {
  Sim s;
  s.add(make_io_latency(io_latency_rule()));
  s.spawn(500, "db");
  s.spawn(501, "web");
  s.set_load(500, Load{.io_bytes = 8192, .io_reqs = 1, .io_lat_ns = 300 * kMs});
  s.set_load(501, Load{.io_bytes = 8192, .io_reqs = 1, .io_lat_ns = 80 * kMs});  // p99 ~130 ms: band
  s.run(11);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "io_p99_ms");
  EXPECT_GE(f->evidence["value"].get<double>(), 200);
  EXPECT_GE(f->evidence["requests"].get<uint64_t>(), 5u);
  EXPECT_NEAR(f->evidence["io_mean_ms"].get<double>(), 300, 1);
  const Finding* g = s.finding_for(501);
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(g->strong);
}

TEST(IoLatency, TooFewRequests) {
  Sim s;
  s.add(make_io_latency(io_latency_rule()));
  s.spawn(500, "db");
  s.run(1);
  for (int i = 0; i < 110; ++i) {
    s.set_load(500, Load{.io_bytes = 4096, .io_reqs = i % 30 == 0 ? 1u : 0u, .io_lat_ns = 900 * kMs});
    s.tick();
  }
  EXPECT_TRUE(s.seen.empty());
}

TEST(IoLatency, ProtectedNotReported) {
  Sim s;
  s.add(make_io_latency(io_latency_rule()));
  s.spawn(2, "jbd2/sda1-8", 0, FP_PROC_KTHREAD);
  s.set_load(2, Load{.io_bytes = 8192, .io_reqs = 1, .io_lat_ns = 300 * kMs});
  s.run(11);
  EXPECT_TRUE(s.seen.empty());
}

// ---- fork_bomb ----

// A shell (pid 100) started `bomb` (pid 200) a while ago. Every tick the bomb
// forks `root_forks` children that each live two ticks and fork `child_forks`
// per tick themselves; their children are not modelled.
struct ForkTree {
  Sim& s;
  uint32_t next_pid = 1000;
  std::vector<std::pair<uint32_t, int>> children;  // pid, ticks left

  void tick(uint64_t root_forks, uint64_t child_forks, uint32_t root = 200) {
    for (auto& [pid, left] : children) {
      if (--left == 0) s.exit(pid);
    }
    std::erase_if(children, [](const auto& c) { return c.second == 0; });
    for (uint64_t i = 0; i < root_forks; ++i) {
      uint32_t pid = next_pid++;
      s.spawn(pid, "bomb", root);
      s.set_load(pid, Load{.cores = 0.01, .forks = child_forks});
      children.emplace_back(pid, 2);
    }
    s.set_load(root, Load{.cores = 0.5, .forks = root_forks});
    s.tick();
  }
};

TEST(ForkBomb, BlamesTheRootOfTheTreeNotTheShell) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "bash");
  s.run(5);
  s.proc(100).forks += 1;  // bash forked the bomb
  s.spawn(200, "bomb", 100);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) t.tick(3, 5);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(200));
  EXPECT_EQ(f.severity, Severity::Critical);  // the rule's
  EXPECT_EQ(f.evidence["metric"], "tree_forks_per_s");
  // Own 30/s plus about 6 children at 50/s each.
  EXPECT_GT(f.evidence["value"].get<double>(), 200);
  EXPECT_NEAR(f.evidence["root_forks_per_s"].get<double>(), 30, 1);
  EXPECT_NEAR(f.evidence["top_forker"]["forks_per_s"].get<double>(), 50, 1);
  EXPECT_NE(f.evidence["top_forker"]["pid"], 200);  // a child forked fastest
  EXPECT_GE(f.evidence["forking_processes"].get<size_t>(), 4u);
  EXPECT_FALSE(s.seen[100].any());
}

TEST(ForkBomb, AFastForkingParentIsPartOfTheTree) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "make");
  s.spawn(200, "sh", 100);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) {
    s.set_load(100, Load{.cores = 0.2, .forks = 2});  // 20/s: >= 10 % of the threshold
    t.tick(3, 5);
  }
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
}

TEST(ForkBomb, ProtectedAncestorStopsTheWalk) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(1, "systemd", 0);
  s.spawn(200, "bomb", 1);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) {
    s.set_load(1, Load{.cores = 0.2, .forks = 5});
    t.tick(3, 5);
  }
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(200));
  EXPECT_FALSE(s.seen[1].any());
}

TEST(ForkBomb, WeakInTheHysteresisBandAndNothingForAScript) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "bash");
  s.spawn(200, "build.sh", 100);
  s.set_load(200, Load{.cores = 0.3, .forks = 5});  // 50/s
  s.run(3);
  EXPECT_EQ(s.seen[200].strong, 0);
  EXPECT_GT(s.seen[200].weak, 0);
  s.set_load(200, Load{.cores = 0.3, .forks = 1});  // 10/s
  s.run(2);
  EXPECT_TRUE(s.findings.empty());
}

TEST(ForkBomb, RuleMatchOnTheRoot) {
  RuleConfig r = fork_rule();
  r.match.comm = "worker*";
  Sim s;
  s.add(make_fork_bomb(r));
  s.spawn(100, "bash");
  s.spawn(200, "bomb", 100);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) t.tick(3, 5);
  EXPECT_TRUE(s.seen.empty());
}

// ---- fork_bomb at 100 Hz sampling ----

RuleConfig fast_fork_rule() {
  RuleConfig r = fork_rule();
  r.window = 200ms;
  r.hold = 1s;
  return r;
}
constexpr uint64_t k100Hz = 10 * kMs;

// faultgen's shape: a young launcher forks the bomb once, and the bomb forks
// 500/s. The launcher's one fork over its short life read as 50-100/s: it was
// named root for ~100 ms, then the root moved to the bomb and the hold
// started again. The bomb is the culprit from the start, and the hold starts
// once it forked ten times (20 ms).
TEST(ForkBomb, AYoungLauncherThatForkedOnceIsNotTheRoot) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  WithTracker t{s, r};
  s.spawn(100, "python3");
  t.run(1);
  s.proc(100).forks += 1;
  s.spawn(200, "faultgen", 100);
  t.tick();
  s.proc(200).forks += 1;
  s.spawn(300, "fg-forkbomb", 200);
  s.set_load(300, Load{.cores = 0.3, .forks = 5});
  const uint64_t start = s.now;
  int first_strong = -1;
  for (int i = 1; i <= 130; ++i) {
    t.tick();
    for (const Finding& f : s.findings) EXPECT_EQ(f.culprit, s.key(300)) << "tick " << i;
    if (first_strong < 0 && s.seen[300].strong > 0) first_strong = i;
  }
  EXPECT_EQ(first_strong, 2);  // 10 forks
  ASSERT_EQ(t.opened.size(), 1u);
  EXPECT_EQ(t.opened[0].culprit, s.key(300));
  EXPECT_LE(t.opened[0].mono_ns - start, 1 * kSec + 3 * k100Hz);  // hold + 20 ms + a tick
}

// A young process's rate is over no less than 100 ms: at 100 Hz the two
// forks of a fresh shell (`sh -c 'a | b'`) read as 200/s over its first tick.
// A parallel build's shells are no fork bomb.
TEST(ForkBomb, AYoungShellsFewForksAreNoBomb) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  WithTracker t{s, r};
  s.spawn(100, "make");
  t.run(1);
  uint32_t next = 1000;
  std::vector<std::pair<uint32_t, int>> shells;  // pid, ticks lived
  for (int i = 0; i < 300; ++i) {
    for (auto& [pid, age] : shells) {
      if (++age == 1) s.proc(pid).forks += 2;
      if (age == 30) s.exit(pid);
    }
    std::erase_if(shells, [](const auto& p) { return p.second >= 30; });
    if (i % 10 == 0) {  // a new shell every 100 ms
      s.proc(100).forks += 1;
      s.spawn(next, "sh", 100);
      shells.emplace_back(next++, 0);
    }
    t.tick();
    for (const Finding& f : s.findings) EXPECT_FALSE(f.strong) << "tick " << i << ": " << f.evidence.dump();
  }
  EXPECT_TRUE(t.opened.empty());
}

// The minimum span holds back young processes only: a process older than
// the window is rated over the whole window, as before.
TEST(ForkBomb, AnOldForkerIsRatedOverTheWholeWindow) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  s.spawn(100, "bash");
  s.spawn(200, "worker", 100);
  s.run(1);
  s.set_load(200, Load{.cores = 0.3, .forks = 5});
  s.run(0.05);  // 25 forks in 50 ms of a 200 ms window: 125/s
  const Finding* f = s.finding_for(200);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_NEAR(f->evidence["value"].get<double>(), 125, 0.01);
}

// ---- anomaly ----

// A long-lived service at ~0.1 core with a little jitter.
void steady(Sim& s, uint32_t pid, double seconds) {
  int n = static_cast<int>(seconds * 10);
  for (int i = 0; i < n; ++i) {
    s.set_load(pid, Load{.cores = i % 2 == 0 ? 0.08 : 0.12, .io_bytes = 10'000, .io_reqs = 1,
                         .io_lat_ns = 1 * kMs, .page_faults = 20});
    s.tick();
  }
}

TEST(Anomaly, JumpFarOutsideTheBaseline) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "svc");
  steady(s, 500, 70);
  EXPECT_FALSE(s.seen[500].any());
  s.set_load(500, Load{.cores = 2.5});  // z = 2.4 / 0.2 (the floor) = 12
  s.run(1.5);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["metric"], "cpu_cores_z");
  EXPECT_GE(f->evidence["value"].get<double>(), 8);
  EXPECT_NEAR(f->evidence["metrics"]["cpu_cores"]["mean"].get<double>(), 0.1, 0.02);
  EXPECT_NEAR(f->evidence["metrics"]["cpu_cores"]["value"].get<double>(), 2.5, 0.05);
  // The baseline does not learn the anomaly: a minute later it is still one.
  s.run(60);
  f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_NEAR(f->evidence["metrics"]["cpu_cores"]["mean"].get<double>(), 0.1, 0.02);
}

TEST(Anomaly, NothingDuringWarmUp) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "svc");
  steady(s, 500, 30);
  s.set_load(500, Load{.cores = 3});
  s.run(5);
  EXPECT_FALSE(s.seen[500].any());
}

TEST(Anomaly, TheFloorsKeepSmallChangesQuiet) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "idle");
  s.run(70);  // idle all along: stddev 0
  s.set_load(500, Load{.cores = 0.5, .io_bytes = 1'000'000, .io_reqs = 10, .io_lat_ns = kMs, .page_faults = 300});
  s.run(5);
  EXPECT_FALSE(s.seen[500].any());
}

TEST(Anomaly, WeakInTheHysteresisBand) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "svc");
  steady(s, 500, 70);
  s.set_load(500, Load{.cores = 1.2});  // z = 1.1 / 0.2 = 5.5
  s.run(3);
  EXPECT_EQ(s.seen[500].strong, 0);
  EXPECT_GT(s.seen[500].weak, 0);
}

TEST(Anomaly, IoAndPageFaultsToo) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "svc");
  s.spawn(501, "svc2");
  s.spawn(600, "bystander");
  s.run(70);
  s.set_load(500, Load{.io_bytes = 6'000'000, .io_reqs = 50, .io_lat_ns = kMs});  // 60 MB/s: z = 12
  s.set_load(501, Load{.page_faults = 1000});                                       // 10k/s: z = 10
  s.run(1.5);
  ASSERT_NE(s.finding_for(500), nullptr);
  EXPECT_EQ(s.finding_for(500)->evidence["metric"], "io_bytes_per_s_z");
  ASSERT_NE(s.finding_for(501), nullptr);
  EXPECT_EQ(s.finding_for(501)->evidence["metric"], "page_faults_per_s_z");
  EXPECT_FALSE(s.seen[600].any());
}

TEST(Anomaly, PidReuseAndExitDropTheBaseline) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.spawn(500, "svc");
  steady(s, 500, 70);
  s.reuse_pid(500, "svc");  // a new process: warm-up again
  s.set_load(500, Load{.cores = 0.1});
  s.run(5);
  s.set_load(500, Load{.cores = 3});
  s.run(5);
  EXPECT_FALSE(s.seen[500].any());
  // An exited one is forgotten; its successor under the same pid learns from scratch.
  s.exit(500);
  s.tick();
  s.spawn(500, "svc");
  s.set_load(500, Load{.cores = 3});
  s.run(10);
  EXPECT_FALSE(s.seen[500].any());
}

TEST(Anomaly, ProtectedNotReported) {
  Sim s;
  s.add(make_anomaly(anomaly_rule()));
  s.world.self_tgid = 500;
  s.spawn(500, "faultprobed");
  steady(s, 500, 70);
  s.set_load(500, Load{.cores = 3});
  s.run(3);
  EXPECT_FALSE(s.seen[500].any());
}

}  // namespace
}  // namespace fp
