// The threshold detector io_latency: a process's own slow IO, with enough
// requests. Synthetic processes (detect_sim.h) fed through a real
// ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

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

}  // namespace
}  // namespace fp
