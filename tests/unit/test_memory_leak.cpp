// The threshold detector memory_leak: steady RSS growth over a full window,
// not one big allocation or jumpy growth. Synthetic processes (detect_sim.h)
// fed through a real ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

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

}  // namespace
}  // namespace fp
