// The threshold detector runq_starvation: victims whose run-queue waits are
// long, blamed on the process that held their CPUs. Synthetic processes
// (detect_sim.h) fed through a real ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

std::vector<uint32_t> sorted(std::vector<uint32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

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
    s.set_load(201, Load{.runq_waits = i % 10 == 0 ? 1u : 0u, .runq_wait_ns = i % 10 == 0 ? 300 * kMs : 0});
    s.tick();
  }
  EXPECT_TRUE(s.seen.empty());
}

TEST(RunqStarvation, FewWaitsThatFillTheWindowMakeAVictim) {
  // A CFS process beside an RT spinner on its CPU: one 50 ms slice a second,
  // so one 950 ms wait a second, 10 in the window (count = 20), 95 % of it waiting.
  Sim s;
  s.add(make_runq_starvation(runq_rule()));
  s.spawn(100, "spinner");
  s.spawn(200, "victim");
  s.set_load(100, Load{.cores = 0.95});
  s.run(1);
  for (int i = 0; i < 120; ++i) {
    s.set_load(200, Load{.cores = 0.05, .runq_waits = i % 10 == 0 ? 1u : 0u,
                         .runq_wait_ns = i % 10 == 0 ? 950 * kMs : 0});
    s.tick();
  }
  ASSERT_FALSE(s.findings.empty());
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].victims, (std::vector<uint32_t>{200}));
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

}  // namespace
}  // namespace fp
