// The threshold detector io_storm: one process's dominant share of the IO
// while others wait. Synthetic processes (detect_sim.h) fed through a real
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

}  // namespace
}  // namespace fp
