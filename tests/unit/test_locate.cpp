// The localizer: culprit by share of a resource in the window, victims, evidence.
#include "detect/locate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "detect_sim.h"
#include "fake_tree.h"

namespace fp {
namespace {

using sim::kMs;
using sim::kSec;
using sim::Load;
using sim::Sim;

constexpr uint64_t kWindow = 10 * kSec;

// A hog, two victims that also run a little, two bystanders.
void busy_host(Sim& s) {
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.spawn(201, "db");
  s.spawn(300, "cron");
  s.spawn(301, "idle");
  s.set_load(100, Load{.cores = 2.0});
  s.set_load(200, Load{.cores = 0.3, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
  s.set_load(201, Load{.cores = 0.2, .runq_waits = 3, .runq_wait_ns = 150 * kMs});
  s.set_load(300, Load{.cores = 0.5});
}

TEST(TopConsumer, PicksTheHogAndSharesAreOfEveryone) {
  Sim s;
  busy_host(s);
  s.run(12);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kWindow, {s.key(200), s.key(201)});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(100));
  EXPECT_EQ(c->comm, "hog");
  EXPECT_EQ(c->resource, Resource::Cpu);
  EXPECT_EQ(c->window_ns, kWindow);
  // A 10 s window reaches back to the table's 1 s points: within a tick of 10 s.
  EXPECT_NEAR(static_cast<double>(c->amount), 20e9, 0.21e9);
  EXPECT_NEAR(static_cast<double>(c->total), 30e9, 0.31e9);  // the excluded victims count in the total
  EXPECT_NEAR(c->share, 2.0 / 3.0, 1e-9);
  EXPECT_NEAR(c->rate(), 2.0, 0.021);
  EXPECT_EQ(c->consumers, 4u);
  EXPECT_TRUE(c->largest);
  ASSERT_TRUE(c->runner_up);
  EXPECT_EQ(c->runner_up->key, s.key(300));  // not a victim, though web used less
  EXPECT_NEAR(c->runner_up->share, 0.5 / 3.0, 1e-9);
  EXPECT_TRUE(c->runner_up->blameable);
}

TEST(TopConsumer, WithoutExclusionsTheRunnerUpIsTheNextLargest) {
  Sim s;
  busy_host(s);
  s.set_load(200, Load{.cores = 0.8});
  s.run(12);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kWindow);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(100));
  ASSERT_TRUE(c->runner_up);
  EXPECT_EQ(c->runner_up->key, s.key(200));
}

TEST(TopConsumer, ProtectedTopIsSkippedButShown) {
  Sim s;
  busy_host(s);
  s.protected_comms = {"hog"};
  s.run(12);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kWindow);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(300));
  EXPECT_FALSE(c->largest);
  ASSERT_TRUE(c->runner_up);
  EXPECT_EQ(c->runner_up->key, s.key(100));
  EXPECT_FALSE(c->runner_up->blameable);
}

TEST(TopConsumer, Pid1KernelThreadsAndSelfAreNeverCulprits) {
  Sim s;
  s.world.self_tgid = 700;
  s.spawn(1, "systemd", 0);
  s.spawn(2, "kswapd0", 0, FP_PROC_KTHREAD);
  s.spawn(700, "faultprobed");
  s.spawn(800, "app");
  s.set_load(1, Load{.cores = 3});
  s.set_load(2, Load{.cores = 3});
  s.set_load(700, Load{.cores = 3});
  s.set_load(800, Load{.cores = 0.1});
  s.run(2);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kSec);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(800));
  EXPECT_NEAR(c->share, 0.1 / 9.1, 1e-6);
  s.set_load(800, Load{});
  s.run(2);
  EXPECT_FALSE(top_consumer(s.world, Resource::Cpu, kSec));
}

TEST(TopConsumer, AnExitedProcessCountsInTheTotalButIsNotBlamed) {
  Sim s;
  busy_host(s);
  s.run(5);
  s.exit(100);
  std::optional<Culprit> c;
  s.during_tick = [&] { c = top_consumer(s.world, Resource::Cpu, kWindow); };
  s.tick();  // the table keeps the exited hog for this tick
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(300));
  EXPECT_FALSE(c->largest);
  EXPECT_GT(c->total, 10 * kSec);
}

TEST(TopConsumer, NobodyUsedAnything) {
  Sim s;
  s.spawn(100, "a");
  s.spawn(101, "b");
  s.run(2);
  EXPECT_FALSE(top_consumer(s.world, Resource::Cpu, kWindow));
  EXPECT_FALSE(top_consumer(s.world, Resource::IoBytes, kWindow));
}

TEST(TopConsumer, OnlyTheWindowCounts) {
  Sim s;
  s.spawn(100, "old");
  s.spawn(101, "new");
  s.set_load(100, Load{.cores = 3});
  s.run(20);
  s.set_load(100, Load{});
  s.set_load(101, Load{.cores = 0.5});
  s.run(11);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kWindow);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, s.key(101));
  EXPECT_NEAR(c->share, 1.0, 1e-9);
  EXPECT_FALSE(c->runner_up);
}

TEST(TopConsumer, OtherResources) {
  Sim s;
  s.spawn(100, "writer");
  s.spawn(101, "allocator");
  s.spawn(102, "shrinker", 1, 0, 512 << 20);
  s.set_load(100, Load{.io_bytes = 3'000'000, .io_reqs = 10, .io_lat_ns = kMs, .page_faults = 10});
  s.set_load(101, Load{.io_bytes = 1'000'000, .io_reqs = 5, .io_lat_ns = kMs, .rss_bytes = 4 << 20,
                       .page_faults = 1000});
  s.set_load(102, Load{.rss_bytes = -(8 << 20), .page_faults = 10});
  s.run(5);

  std::optional<Culprit> io = top_consumer(s.world, Resource::IoBytes, kSec);
  ASSERT_TRUE(io);
  EXPECT_EQ(io->key, s.key(100));
  EXPECT_NEAR(io->share, 0.75, 1e-9);
  EXPECT_NEAR(io->rate(), 30e6, 1);

  std::optional<Culprit> mem = top_consumer(s.world, Resource::MemoryGrowth, kSec);
  ASSERT_TRUE(mem);
  EXPECT_EQ(mem->key, s.key(101));
  EXPECT_NEAR(mem->share, 1.0, 1e-9);  // shrinking counts as no growth
  EXPECT_EQ(mem->amount, uint64_t{40} << 20);

  std::optional<Culprit> pf = top_consumer(s.world, Resource::PageFaults, kSec);
  ASSERT_TRUE(pf);
  EXPECT_EQ(pf->key, s.key(101));
  EXPECT_NEAR(pf->share, 1000.0 / 1020.0, 1e-9);
}

TEST(FindVictims, WorstFirstAndProtectedOnesToo) {
  Sim s;
  busy_host(s);
  s.spawn(2, "kworker/1:0", 0, FP_PROC_KTHREAD);
  s.set_load(2, Load{.runq_waits = 3, .runq_wait_ns = 400 * kMs});
  s.run(11);
  std::vector<Victim> v = find_victims(s.world, kWindow, [](const ProcState& p, const WindowDelta& d) {
    std::optional<Victim> out;
    double p99 = runq_p99_ms(d);
    if (p99 > 100) out = Victim{p.key, p.comm, p99, d.delta.runq_waits};
    return out;
  });
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].key, s.key(2));
  EXPECT_EQ(v[1].key, s.key(200));
  EXPECT_EQ(v[2].key, s.key(201));
  EXPECT_NEAR(static_cast<double>(v[1].count), 300, 3);  // 3 per tick over the 10 s window
  EXPECT_EQ(victim_pids(v), (std::vector<uint32_t>{2, 200, 201}));
  EXPECT_EQ(victim_keys(v).size(), 3u);
}

TEST(Symptoms, QuantilesAndShares) {
  WindowDelta d;
  EXPECT_EQ(runq_p99_ms(d), 0);
  EXPECT_EQ(io_p99_ms(d), 0);
  d.runq_hist[17] = 100;  // [131, 262) ms
  d.io_lat_hist[10] = 100;  // [1.024, 2.048) ms
  EXPECT_GT(runq_p99_ms(d), 131);
  EXPECT_LT(runq_p99_ms(d), 263);
  EXPECT_GT(io_p99_ms(d), 1.0);
  EXPECT_LT(io_p99_ms(d), 2.1);
  d.delta.reclaim_ns = 2 * kSec;
  EXPECT_DOUBLE_EQ(reclaim_share(d, kWindow), 0.2);
  EXPECT_EQ(reclaim_share(d, 0), 0);
}

TEST(Evidence, CulpritAndVictims) {
  Sim s;
  busy_host(s);
  s.run(12);
  std::optional<Culprit> c = top_consumer(s.world, Resource::Cpu, kWindow, {s.key(200), s.key(201)});
  ASSERT_TRUE(c);
  nlohmann::json j = culprit_evidence(*c);
  EXPECT_EQ(j["resource"], "cpu_ns");
  EXPECT_EQ(j["window_ms"], 10000);
  EXPECT_EQ(j["culprit"]["pid"], 100);
  EXPECT_EQ(j["culprit"]["comm"], "hog");
  EXPECT_EQ(j["culprit"]["amount"], c->amount);
  EXPECT_DOUBLE_EQ(j["culprit"]["share"].get<double>(), 0.6667);
  EXPECT_DOUBLE_EQ(j["culprit"]["rate"].get<double>(), std::round(c->rate() * 1e4) / 1e4);
  EXPECT_EQ(j["total"], c->total);
  EXPECT_EQ(j["consumers"], 4);
  EXPECT_EQ(j["largest"], true);
  EXPECT_EQ(j["runner_up"]["pid"], 300);
  EXPECT_DOUBLE_EQ(j["runner_up"]["share"].get<double>(), 0.1667);
  EXPECT_EQ(j["runner_up"]["blameable"], true);

  std::vector<Victim> v{{s.key(200), "web", 123.456789, 300}, {s.key(201), "db", 101.0, 250}};
  nlohmann::json jv = victims_evidence(v, "runq_p99_ms", "waits");
  ASSERT_EQ(jv.size(), 2u);
  EXPECT_EQ(jv[0]["pid"], 200);
  EXPECT_EQ(jv[0]["comm"], "web");
  EXPECT_DOUBLE_EQ(jv[0]["runq_p99_ms"].get<double>(), 123.4568);
  EXPECT_EQ(jv[0]["waits"], 300);
  EXPECT_FALSE(victims_evidence(v, "share").at(0).contains("waits"));

  Culprit alone;
  alone.key = s.key(100);
  EXPECT_TRUE(culprit_evidence(alone)["runner_up"].is_null());
}

TEST(Resources, Names) {
  EXPECT_STREQ(resource_name(Resource::Cpu), "cpu_ns");
  EXPECT_STREQ(resource_name(Resource::IoBytes), "io_bytes");
  EXPECT_STREQ(resource_name(Resource::MemoryGrowth), "rss_growth_bytes");
  EXPECT_STREQ(resource_name(Resource::PageFaults), "page_faults");
}

}  // namespace
}  // namespace fp

// The device of a process's last IO: MAJ:MIN from the kernel's dev_t, the
// name from sysfs when the device is still there.
TEST(IoDeviceEvidence, DecodesTheKernelDevTAndNamesIt) {
  fp::test::FakeTree sys;
  sys.put("dev/block/253:3/uevent", "MAJOR=253\nMINOR=3\nDEVNAME=dm-3\nDEVTYPE=disk\n");
  auto ev = fp::io_device_evidence((253u << 20) | 3, sys.root());
  EXPECT_EQ(ev["device"], "253:3");
  EXPECT_EQ(ev["device_name"], "dm-3");
  auto gone = fp::io_device_evidence((7u << 20) | 1048575, sys.root());
  EXPECT_EQ(gone["device"], "7:1048575");
  EXPECT_FALSE(gone.contains("device_name"));
  EXPECT_TRUE(fp::io_device_evidence(0, sys.root()).empty());
}
