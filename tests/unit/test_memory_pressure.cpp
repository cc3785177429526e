// The threshold detector memory_pressure: direct-reclaim stalls of victims,
// blamed on the process that grew (or on page faults when none did).
// Synthetic processes (detect_sim.h) fed through a real ProcessTable, tick by
// tick.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

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

}  // namespace
}  // namespace fp
