// A CPU quota's own waits are not starvation: CgroupCpuQuota reads how long a
// process's cpu cgroup (or an ancestor) was throttled from cpu.stat on a fake
// tree (v1 and v2), and runq_starvation leaves a process its quota held out
// of its victims (the kernel counts throttled time as run-queue wait: a
// spinner in a 10 % cpu cgroup waited 1.2 s a second on 6.18 with an idle CPU).
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>

#include "act/cgroup_ops.h"
#include "detect/cpu_quota.h"
#include "fake_tree.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace sim;

constexpr uint64_t kSec = 1'000'000'000;

struct QuotaTree {
  test::FakeTree t;
  CgroupOps ops;
  CgroupLayout v1() const { return CgroupLayout{"", {}, {{"cpu", t.path("cpu")}, {"cpuacct", t.path("cpu")}}}; }
  CgroupLayout v2() const { return CgroupLayout{t.path("unified"), {"cpu", "memory"}, {}}; }
};

TEST(QuotaWait, CpuStatFields) {
  EXPECT_EQ(cpu_stat_throttled_ns("nr_periods 69\nnr_throttled 67\nthrottled_time 5070431165\n"), 5070431165u);
  EXPECT_EQ(cpu_stat_throttled_ns("usage_usec 10\nnr_throttled 3\nthrottled_usec 2500\n"), 2'500'000u);
  EXPECT_EQ(cpu_stat_throttled_ns("usage_usec 10\n"), std::nullopt);
  EXPECT_EQ(cpu_stat_throttled_ns("throttled_time_x 5\n"), std::nullopt);
}

TEST(QuotaWait, V1ThrottledTimeOverTheWindow) {
  QuotaTree q;
  q.t.put("proc/42/cgroup", "4:cpu,cpuacct:/fpexp\n5:memory:/\n");
  q.t.put("cpu/fpexp/cpu.cfs_quota_us", "10000\n");
  q.t.put("cpu/fpexp/cpu.stat", "nr_periods 1\nnr_throttled 1\nthrottled_time 1000\n");
  q.t.put("cpu/cpu.cfs_quota_us", "-1\n");
  CgroupCpuQuota cq(q.v1(), q.ops, q.t.path("proc"));
  auto w = cq.quota_wait(ProcKey{42, 1}, 10 * kSec, 10 * kSec);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->span_ns, 0u) << "the first reading knows nothing yet";
  EXPECT_EQ(w->group, "/fpexp");
  q.t.put("cpu/fpexp/cpu.stat", "nr_periods 10\nnr_throttled 9\nthrottled_time 900001000\n");
  w = cq.quota_wait(ProcKey{42, 1}, 11 * kSec, 10 * kSec);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->span_ns, kSec);
  EXPECT_EQ(w->throttled_ns, 900'000'000u);
  // Asked every second (a victim is asked about at every tick): readings
  // older than the window go, one is kept at its edge.
  for (uint64_t t = 12; t <= 24; ++t) ASSERT_TRUE(cq.quota_wait(ProcKey{42, 1}, t * kSec, 10 * kSec));
  q.t.put("cpu/fpexp/cpu.stat", "throttled_time 1900001000\n");
  w = cq.quota_wait(ProcKey{42, 1}, 25 * kSec, 10 * kSec);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->span_ns, 10 * kSec);
  EXPECT_EQ(w->throttled_ns, 1'000'000'000u);
  w = cq.quota_wait(ProcKey{42, 1}, 30 * kSec, 10 * kSec);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->span_ns, 10 * kSec) << "from the reading at 20 s";
  EXPECT_EQ(w->throttled_ns, 1'000'000'000u);
}

TEST(QuotaWait, NoQuotaAnywhereIsNothing) {
  QuotaTree q;
  q.t.put("proc/42/cgroup", "4:cpu,cpuacct:/app\n");
  q.t.put("cpu/app/cpu.cfs_quota_us", "-1\n");
  q.t.put("cpu/app/cpu.stat", "throttled_time 0\n");
  CgroupCpuQuota cq(q.v1(), q.ops, q.t.path("proc"));
  EXPECT_EQ(cq.quota_wait(ProcKey{42, 1}, kSec, 10 * kSec), std::nullopt);
  // No cpu controller at all, or a process that is gone.
  CgroupCpuQuota none(CgroupLayout{}, q.ops, q.t.path("proc"));
  EXPECT_EQ(none.quota_wait(ProcKey{42, 1}, kSec, 10 * kSec), std::nullopt);
  EXPECT_EQ(cq.quota_wait(ProcKey{77, 1}, kSec, 10 * kSec), std::nullopt);
}

TEST(QuotaWait, V2AncestorQuotaHoldsTheContainer) {
  // A pod's quota on the pod's group; the container below has none.
  QuotaTree q;
  q.t.put("proc/42/cgroup", "0::/kubepods/pod1/ctr\n");
  q.t.put("unified/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  q.t.put("unified/kubepods/pod1/ctr/cpu.stat", "throttled_usec 0\n");
  q.t.put("unified/kubepods/pod1/cpu.max", "50000 100000\n");
  q.t.put("unified/kubepods/pod1/cpu.stat", "throttled_usec 100\n");
  q.t.put("unified/kubepods/cpu.max", "max 100000\n");
  CgroupCpuQuota cq(q.v2(), q.ops, q.t.path("proc"));
  ASSERT_TRUE(cq.quota_wait(ProcKey{42, 1}, kSec, 10 * kSec));
  q.t.put("unified/kubepods/pod1/cpu.stat", "throttled_usec 500100\n");
  auto w = cq.quota_wait(ProcKey{42, 1}, 2 * kSec, 10 * kSec);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->group, "/kubepods/pod1");
  EXPECT_EQ(w->throttled_ns, 500'000'000u);
  EXPECT_EQ(w->span_ns, kSec);
}

// A source that says every process in `held` spent `share` of its time throttled.
class FixedQuota : public CpuQuotaSource {
 public:
  std::optional<QuotaWait> quota_wait(const ProcKey& k, uint64_t, uint64_t) override {
    ++asked;
    if (k.tgid != held) return std::nullopt;
    return QuotaWait{static_cast<uint64_t>(share * double(kSec)), kSec, "/limited"};
  }
  uint32_t held = 0;
  double share = 0;
  int asked = 0;
};

// A runq_starvation sim whose pid 201 ("capped") its quota held 1.8 s a
// second (cpu.stat counts each CPU's throttled time); `quota` null: no source.
void capped_host(Sim& s, FixedQuota* quota, double capped_wait_ms) {
  if (quota != nullptr) {
    quota->held = 201;
    quota->share = 1.8;
    s.world.cpu_quota = quota;
  }
  s.add(make_runq_starvation(runq_rule()));
  s.spawn(201, "capped");
  s.set_load(201, Load{.cores = 0.05, .runq_waits = 1, .runq_wait_ns = uint64_t(capped_wait_ms * kMs)});
}

TEST(QuotaWait, AQuotaHeldProcessIsNoVictim) {
  // Two waiters beside a hog: 200 waits ~200 ms for the CPU the hog holds;
  // 201 (two threads) waits 150 ms a tick, held by its own quota.
  Sim s;
  FixedQuota quota;
  capped_host(s, &quota, 150);
  s.spawn(100, "hog");
  s.spawn(200, "web");
  s.set_load(100, Load{.cores = 3.8});
  s.set_load(200, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
  s.run(12);
  const Finding* f = s.finding_for(100);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->victims, (std::vector<uint32_t>{200}));
  EXPECT_GT(quota.asked, 0);
}

TEST(QuotaWait, OnlyItsQuotaWaitingMakesNoFault) {
  // The process faultprobed throttled itself (or a container at its limit):
  // its waits are its quota's, nobody else is starved, nothing opens.
  // Without the quota source the same waits blame the other process.
  FixedQuota quota;
  for (FixedQuota* q : {&quota, static_cast<FixedQuota*>(nullptr)}) {
    Sim s;
    capped_host(s, q, 180);
    s.spawn(100, "other");
    s.set_load(100, Load{.cores = 1.0});
    s.run(15);
    EXPECT_EQ(s.seen.empty(), q != nullptr);
  }
}

}  // namespace
}  // namespace fp
