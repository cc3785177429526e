// The threshold detector anomaly: a metric far outside the process's own
// learned baseline. Synthetic processes (detect_sim.h) fed through a real
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
