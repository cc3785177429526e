// memory_leak's forecast: a steady climb over 10 s whose slope would exhaust
// the memory left to the process within the rule's horizon opens the leak
// long before the 60 s window is full; a process that allocates once and
// plateaus does not. And CgroupMemoryBudget: the memory left to a process
// under its memory cgroup's limits (v1, v2, ancestors) or the host's
// MemAvailable, read from a fake tree and cached per cgroup.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

#include "act/cgroup_ops.h"
#include "detect/memory_budget.h"
#include "fake_tree.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// A fixed budget for every process; counts the questions.
class FixedBudget : public MemoryBudgetSource {
 public:
  explicit FixedBudget(uint64_t available) : available_(available) {}
  std::optional<MemoryBudget> budget(const ProcKey&, uint64_t) override {
    ++asked;
    return MemoryBudget{available_, 1 * kGiB, 1 * kGiB - available_, "memory cgroup /leak (memory.limit_in_bytes)"};
  }
  void set(uint64_t available) { available_ = available; }
  int asked = 0;

 private:
  uint64_t available_;
};

RuleConfig forecast_rule() {
  RuleConfig r = leak_rule();
  r.horizon = 600s;
  return r;
}

TEST(LeakForecast, FastLeakOpensWithinTheShortSpan) {
  Sim s;
  FixedBudget budget(900 * kMiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  s.spawn(500, "leaky");
  s.set_load(500, Load{.cores = 0.3, .rss_bytes = 5'000'000});  // 50 MB/s
  s.run(9);
  EXPECT_FALSE(s.seen[500].any()) << "the 10 s evidence span is not full yet";
  s.run(2);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_EQ(f->evidence["opened_by"], "forecast");
  EXPECT_NEAR(f->evidence["value"].get<double>(), 50.0, 1.0);
  // 900 MiB at 50 MB/s: about 19 s.
  EXPECT_NEAR(f->evidence["time_to_exhaustion_s"].get<double>(), 900.0 * kMiB / 50e6, 1.0);
  EXPECT_EQ(f->evidence["horizon_s"].get<double>(), 600.0);
  EXPECT_EQ(f->evidence["limit"]["name"], "memory cgroup /leak (memory.limit_in_bytes)");
  EXPECT_EQ(f->evidence["limit"]["available_bytes"].get<uint64_t>(), 900 * kMiB);
}

TEST(LeakForecast, OpensAFaultThroughTheTracker) {
  Sim s;
  FixedBudget budget(900 * kMiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  WithTracker t(s, forecast_rule());
  s.spawn(500, "leaky");
  s.set_load(500, Load{.cores = 0.3, .rss_bytes = 5'000'000});
  for (int i = 0; i < 120 && t.opened.empty(); ++i) t.tick();
  ASSERT_EQ(t.opened.size(), 1u);
  EXPECT_EQ(t.opened[0].culprit.tgid, 500u);
  EXPECT_EQ(t.opened[0].evidence["opened_by"], "forecast");
}

TEST(LeakForecast, BeyondTheHorizonWaitsForTheWindow) {
  Sim s;
  FixedBudget budget(20 * kGiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  s.spawn(500, "leaky");
  s.set_load(500, Load{.cores = 0.1, .rss_bytes = 700'000});  // 7 MB/s: 20 GiB last ~50 min
  s.run(40);
  EXPECT_EQ(s.seen[500].strong, 0) << "a slope that needs 50 min is the window's to judge";
  // The memory left shrinks (others took it): 1 min now, within 4 times the
  // 40 s climb seen (a forecast reaches no further than that).
  budget.set(400 * kMiB);
  s.run(2);
  const Finding* f = s.finding_for(500);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->evidence["opened_by"], "forecast");
  EXPECT_LE(f->evidence["time_to_exhaustion_s"].get<double>(), 4 * f->evidence["climb_s"].get<double>());
}

TEST(LeakForecast, ACompilerThatGrowsFastThenStopsStaysClean) {
  // Measured beside a build: cc1plus grew 477 MB in 10 s with 23 GB free, a
  // forecast of ~8 min, inside the 10 min horizon; then it finished.
  Sim s;
  FixedBudget budget(23 * kGiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  s.spawn(500, "cc1plus");
  s.set_load(500, Load{.cores = 0.9, .rss_bytes = 4'770'000});  // 47.7 MB/s
  s.run(14);
  s.set_load(500, Load{.cores = 0.9});
  s.run(20);
  EXPECT_EQ(s.seen[500].strong, 0) << "a 14 s climb does not forecast 8 minutes";
}

TEST(LeakForecast, AllocateOnceAndPlateauStaysClean) {
  Sim s;
  FixedBudget budget(1 * kGiB + 512 * kMiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  s.spawn(500, "java");
  s.set_load(500, Load{.cores = 0.1});
  s.run(15);
  s.set_load(500, Load{.cores = 0.9, .rss_bytes = 36'000'000});  // ~1 GiB in 3 s: a heap, a cache warm-up
  s.run(3);
  s.set_load(500, Load{.cores = 0.01});
  s.run(70);
  EXPECT_EQ(s.seen[500].strong, 0);
}

TEST(LeakForecast, SmallGrowthIsNoEvidence) {
  Sim s;
  FixedBudget budget(100 * kMiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  s.spawn(500, "slow");
  s.set_load(500, Load{.cores = 0.1, .rss_bytes = 400'000});  // 4 MB/s: 40 MB in the span, under 64 MiB
  s.run(30);
  EXPECT_EQ(s.seen[500].strong, 0);
}

TEST(LeakForecast, OffWithoutHorizonOrBudget) {
  for (bool with_budget : {false, true}) {
    Sim s;
    FixedBudget budget(200 * kMiB);
    if (with_budget) s.world.memory_budget = &budget;
    RuleConfig r = forecast_rule();
    if (with_budget) r.horizon = 0s;
    s.add(make_memory_leak(r));
    s.spawn(500, "leaky");
    s.set_load(500, Load{.cores = 0.3, .rss_bytes = 5'000'000});
    s.run(30);
    EXPECT_EQ(s.seen[500].strong, 0) << (with_budget ? "horizon 0s" : "no budget source");
    EXPECT_EQ(budget.asked, 0);
  }
}

TEST(LeakForecast, OnlyClimbersAreLookedUp) {
  Sim s;
  FixedBudget budget(1 * kGiB);
  s.world.memory_budget = &budget;
  s.add(make_memory_leak(forecast_rule()));
  for (uint32_t pid = 500; pid < 600; ++pid) {
    s.spawn(pid, "idle");
    s.set_load(pid, Load{.cores = 0.05, .rss_bytes = pid % 2 ? 4096 : -4096});
  }
  s.run(30);
  EXPECT_EQ(budget.asked, 0);
}

// ---- CgroupMemoryBudget on a fake tree ----

struct BudgetTree {
  test::FakeTree t;
  CgroupOps ops;  // plain file reads: the fake tree is made of plain files
  BudgetTree() { t.put("proc/meminfo", "MemTotal:       16777216 kB\nMemFree: 1 kB\nMemAvailable:    8388608 kB\n"); }
  CgroupLayout v1() const { return CgroupLayout{"", {}, {{"memory", t.path("memory")}, {"cpu", t.path("cpu")}}}; }
  CgroupLayout v2() const { return CgroupLayout{t.path("unified"), {"cpu", "memory"}, {}}; }
};

TEST(MemoryBudget, V1LimitMinusUsage) {
  BudgetTree b;
  b.t.put("proc/42/cgroup", "7:cpu,cpuacct:/elsewhere\n5:memory:/leak\n0::/\n");
  b.t.put("memory/leak/memory.limit_in_bytes", "1073741824\n");
  b.t.put("memory/leak/memory.usage_in_bytes", "629145600\n");  // 600 MiB
  b.t.put("memory/memory.limit_in_bytes", "9223372036854771712\n");  // the root: no limit
  b.t.put("memory/memory.usage_in_bytes", "4000000000\n");
  CgroupMemoryBudget mb(b.v1(), b.ops, b.t.path("proc"));
  auto r = mb.budget(ProcKey{42, 1}, 1'000'000'000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->available_bytes, 424 * kMiB);
  EXPECT_EQ(r->limit_bytes, 1 * kGiB);
  EXPECT_EQ(r->limit, "memory cgroup /leak (memory.limit_in_bytes)");
}

TEST(MemoryBudget, V2TightestAncestorAndHost) {
  BudgetTree b;
  b.t.put("proc/42/cgroup", "0::/app/worker\n");
  b.t.put("unified/app/worker/memory.max", "max\n");
  b.t.put("unified/app/worker/memory.current", "100\n");
  b.t.put("unified/app/memory.max", "2147483648\n");
  b.t.put("unified/app/memory.current", "1610612736\n");  // 512 MiB left
  CgroupMemoryBudget mb(b.v2(), b.ops, b.t.path("proc"));
  auto r = mb.budget(ProcKey{42, 1}, 1'000'000'000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->available_bytes, 512 * kMiB);
  EXPECT_EQ(r->limit, "memory cgroup /app (memory.max)");

  // A process with no limit above it: the host's MemAvailable.
  b.t.put("proc/43/cgroup", "0::/free\n");
  b.t.put("unified/free/memory.max", "max\n");
  r = mb.budget(ProcKey{43, 1}, 1'000'000'000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->available_bytes, 8 * kGiB);
  EXPECT_EQ(r->limit_bytes, 16 * kGiB);
  EXPECT_EQ(r->limit, "host MemAvailable");
}

TEST(MemoryBudget, NoMemoryControllerIsTheHost) {
  BudgetTree b;
  b.t.put("proc/42/cgroup", "0::/x\n");
  CgroupMemoryBudget mb(CgroupLayout{}, b.ops, b.t.path("proc"));
  auto r = mb.budget(ProcKey{42, 1}, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->limit, "host MemAvailable");
}

TEST(MemoryBudget, ReadsAreCachedForTheRefreshPeriod) {
  BudgetTree b;
  b.t.put("proc/42/cgroup", "5:memory:/leak\n");
  b.t.put("proc/43/cgroup", "5:memory:/leak\n");
  b.t.put("memory/leak/memory.limit_in_bytes", "1073741824\n");
  b.t.put("memory/leak/memory.usage_in_bytes", "0\n");
  CgroupMemoryBudget mb(b.v1(), b.ops, b.t.path("proc"), 2'000'000'000);
  const uint64_t t0 = 10'000'000'000;
  ASSERT_TRUE(mb.budget(ProcKey{42, 1}, t0));
  const uint64_t first = mb.reads();
  // Another process of the same cgroup: only its /proc/PID/cgroup is new.
  ASSERT_TRUE(mb.budget(ProcKey{43, 1}, t0 + 100'000'000));
  EXPECT_EQ(mb.reads(), first + 1);
  // Ticks within the refresh period read nothing.
  for (int i = 0; i < 10; ++i) mb.budget(ProcKey{42, 1}, t0 + 100'000'000 * uint64_t(i));
  EXPECT_EQ(mb.reads(), first + 1);
  // After it, the values are read again (and a change is seen).
  b.t.put("memory/leak/memory.usage_in_bytes", "1073741824\n");
  auto r = mb.budget(ProcKey{42, 1}, t0 + 3'000'000'000);
  EXPECT_GT(mb.reads(), first + 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->available_bytes, 0u);
}

TEST(MemoryBudget, MeminfoFields) {
  EXPECT_EQ(meminfo_bytes("MemTotal:  10 kB\nMemAvailable: 4 kB\n", "MemAvailable"), 4096u);
  EXPECT_EQ(meminfo_bytes("MemTotal:  10 kB\n", "MemAvailable"), std::nullopt);
  EXPECT_EQ(meminfo_bytes("MemAvailable: x kB\n", "MemAvailable"), std::nullopt);
}

}  // namespace
}  // namespace fp
