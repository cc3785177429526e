// The detectors' incremental evaluation: a tick costs in proportion to the
// processes that changed (or whose window a point just left), yet the
// findings are those a full sweep over every process gives.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "detect/detectors.h"
#include "detect_sim.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using sim::Load;
using sim::rule;
using sim::Sim;

std::vector<RuleConfig> all_rules() {
  return {rule(FaultClass::CpuRunaway, 0.9, 0.5, 1s),      rule(FaultClass::RunqStarvation, 100, 50, 10s, 20),
          rule(FaultClass::MemoryLeak, 1.0, 0.1, 60s),     rule(FaultClass::MemoryPressure, 0.10, 0.02, 10s),
          rule(FaultClass::IoStorm, 50, 20, 10s, 5),        rule(FaultClass::IoLatency, 200, 100, 10s, 5),
          rule(FaultClass::ForkBomb, 100, 20, 1s),          rule(FaultClass::Anomaly, 8, 4, 1s, 60)};
}

void add_all(Sim& s) {
  for (const RuleConfig& r : all_rules()) s.add(make_detector(r));
}

TEST(Incremental, IdleProcessesCostNoWindowPerTick) {
  Sim s;
  add_all(s);
  for (uint32_t pid = 1000; pid < 2000; ++pid) s.spawn(pid, "sleeper");
  s.run(70);  // every window (the longest is 60 s) has passed their last change
  const uint64_t before = s.table.windows_computed();
  s.run(100);  // 1,000 ticks
  EXPECT_EQ(s.table.windows_computed(), before);
}

TEST(Incremental, HogThatStopsChangingClearsItsFinding) {
  Sim s;
  add_all(s);
  for (uint32_t pid = 1000; pid < 1100; ++pid) s.spawn(pid, "sleeper");
  s.spawn(500, "spin");
  s.set_load(500, Load{.cores = 1.0});
  s.run(2);
  ASSERT_NE(s.finding_for(500), nullptr);
  // It stops: its slot never changes again, so it is never "changed" again.
  s.set_load(500, Load{});
  s.run(0.3);
  ASSERT_NE(s.finding_for(500), nullptr);  // 0.7 s of spinning in the 1 s window: weak, above resolve
  EXPECT_FALSE(s.finding_for(500)->strong);
  s.run(0.8);
  EXPECT_EQ(s.finding_for(500), nullptr);  // the last change left the 1 s window
}

TEST(Incremental, BusyAfterAThousandIdleTicksIsSeenAtOnce) {
  Sim s;
  add_all(s);
  for (uint32_t pid = 1000; pid < 1100; ++pid) s.spawn(pid, "sleeper");
  s.spawn(700, "bomb");
  s.run(100);  // 1,000 idle ticks
  s.set_load(700, Load{.forks = 200});  // in its (full) 1 s window: 200 forks/s at the first tick
  s.tick();
  const Finding* f = s.finding_for(700);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
}

// A detector kept across ticks finds what a new one (whose first tick visits
// every process) finds at the same tick.
TEST(Incremental, SameFindingsAsAFullSweep) {
  Sim s;
  std::vector<RuleConfig> rules = all_rules();
  rules.pop_back();  // anomaly: a new detector has no baseline to compare
  for (const RuleConfig& r : rules) s.add(make_detector(r));
  for (uint32_t pid = 1000; pid < 1050; ++pid) s.spawn(pid, "sleeper");
  s.spawn(500, "spin");
  s.spawn(501, "waiter");
  s.spawn(502, "writer");
  s.spawn(503, "slowio");
  s.spawn(504, "grower");
  std::vector<Finding> full;
  s.during_tick = [&] {
    full.clear();
    for (const RuleConfig& r : rules) make_detector(r)->evaluate(s.world, full);
  };
  auto same = [&](const char* when) {
    ASSERT_EQ(s.findings.size(), full.size()) << when;
    for (size_t i = 0; i < full.size(); ++i) {
      EXPECT_EQ(s.findings[i].culprit, full[i].culprit) << when;
      EXPECT_EQ(s.findings[i].strong, full[i].strong) << when;
      EXPECT_EQ(s.findings[i].evidence, full[i].evidence) << when;
    }
  };
  uint64_t ticks = 0;
  auto run = [&](int n, const char* when) {
    for (int i = 0; i < n; ++i, ++ticks) {
      s.tick();
      same(when);
    }
  };
  run(20, "quiet");
  s.set_load(500, Load{.cores = 2.0});
  s.set_load(501, Load{.runq_waits = 10, .runq_wait_ns = 300 * sim::kMs});
  s.set_load(502, Load{.io_bytes = 20'000'000, .io_reqs = 10, .io_lat_ns = 1 * sim::kMs});
  s.set_load(503, Load{.io_reqs = 2, .io_lat_ns = 400 * sim::kMs});
  s.set_load(504, Load{.rss_bytes = 8 << 20, .reclaim_ns = 30 * sim::kMs, .page_faults = 100});
  run(150, "busy");
  for (uint32_t pid = 500; pid <= 504; ++pid) s.set_load(pid, Load{});
  run(150, "after");
  EXPECT_GT(ticks, 0u);
}

}  // namespace
}  // namespace fp
