// The threshold detector cpu_runaway: a process (all its threads) over a
// share of a core for the window, the hold applied by the tracker; young
// processes, pid reuse, exits. Synthetic processes (detect_sim.h) fed through
// a real ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

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

}  // namespace
}  // namespace fp
