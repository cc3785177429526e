// The starvation localizer's per-CPU path: a victim's waits split among the
// runners of the CPUs it waited on (blame_of), the window of the probe's
// charges, and runq_starvation on top of them.
#include "detect/locate_runq.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "detect/detectors.h"
#include "detect_sim.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using sim::kMs;
using sim::kSec;
using sim::Load;
using sim::Sim;

constexpr uint32_t kFifo = 1;

RunqBlameEntry entry(uint32_t cpu, uint32_t tgid, uint64_t caused_ms, uint64_t waited_ms = 0, uint64_t waits = 0) {
  RunqBlameEntry e;
  e.cpu = cpu;
  e.tgid = tgid;
  e.caused_ns = caused_ms * kMs;
  e.waited_ns = waited_ms * kMs;
  e.waits = waits;
  e.tid = tgid;
  e.static_prio = 120;
  return e;
}

const RunnerShare* runner(const VictimBlame& v, uint32_t tgid) {
  for (const RunnerShare& r : v.runners)
    if (r.tgid == tgid) return &r;
  return nullptr;
}

TEST(BlameOf, SplitsAVictimsWaitAmongItsCpusRunnersLeavingItselfOut) {
  // CPU 1: the spinner held it for 900 ms of others' waits, a cron job for
  // 100 ms, the victim itself for 50 ms (of the spinner's own wait).
  std::vector<RunqBlameEntry> d = {entry(1, 100, 900, 50, 1), entry(1, 200, 50, 1000, 4), entry(1, 300, 100)};
  VictimBlame v = blame_of(d, 200);
  EXPECT_EQ(v.waited_ns, 1000 * kMs);
  EXPECT_EQ(v.waits, 4u);
  EXPECT_EQ(v.cpus, (std::vector<uint32_t>{1}));
  ASSERT_EQ(v.runners.size(), 2u);
  EXPECT_EQ(v.runners[0].tgid, 100u);  // most first
  EXPECT_NEAR(v.runners[0].share, 0.9, 1e-9);
  EXPECT_NEAR(v.runners[1].share, 0.1, 1e-9);
  EXPECT_EQ(runner(v, 200), nullptr);  // never its own culprit
  ASSERT_NE(v.runners[0].entry, nullptr);
  EXPECT_EQ(v.runners[0].entry->cpu, 1u);
}

TEST(BlameOf, EachVictimBlamesTheRunnersOfTheCpusItWaitedOn) {
  std::vector<RunqBlameEntry> d = {
      entry(0, 100, 800), entry(0, 200, 0, 800, 8),                      // CPU 0: spinner 100, victim 200
      entry(1, 101, 700), entry(1, 201, 0, 700, 7),                      // CPU 1: spinner 101, victim 201
      entry(0, 202, 0, 100, 1), entry(1, 202, 0, 300, 3),                // 202 waited on both, mostly CPU 1
  };
  std::sort(d.begin(), d.end(), [](const auto& a, const auto& b) { return std::tie(a.cpu, a.tgid) < std::tie(b.cpu, b.tgid); });
  VictimBlame v0 = blame_of(d, 200), v1 = blame_of(d, 201), both = blame_of(d, 202);
  ASSERT_EQ(v0.runners.size(), 1u);
  EXPECT_EQ(v0.runners[0].tgid, 100u);
  EXPECT_NEAR(v0.runners[0].share, 1.0, 1e-9);
  ASSERT_EQ(v1.runners.size(), 1u);
  EXPECT_EQ(v1.runners[0].tgid, 101u);
  EXPECT_EQ(v1.cpus, (std::vector<uint32_t>{1}));
  EXPECT_EQ(both.cpus, (std::vector<uint32_t>{1, 0}));
  ASSERT_EQ(both.runners.size(), 2u);
  EXPECT_EQ(both.runners[0].tgid, 101u);
  EXPECT_NEAR(both.runners[0].share, 0.75, 1e-9);
  EXPECT_NEAR(both.runners[1].share, 0.25, 1e-9);
}

TEST(BlameOf, AWaitNobodyWasChargedForIsNobodysKnown) {
  // The probe's per-CPU history did not reach back (tgid 0), or nothing at all was charged.
  std::vector<RunqBlameEntry> d = {entry(0, 0, 300), entry(0, 100, 700), entry(0, 200, 0, 1000, 2),
                                   entry(1, 200, 0, 500, 1)};
  VictimBlame v = blame_of(d, 200);
  EXPECT_EQ(v.waited_ns, 1500 * kMs);
  ASSERT_EQ(v.runners.size(), 2u);
  EXPECT_EQ(v.runners[0].tgid, 0u);  // 300 ms on CPU 0 + all 500 ms on CPU 1
  EXPECT_NEAR(v.runners[0].share, 800.0 / 1500, 1e-9);
  EXPECT_EQ(v.runners[1].tgid, 100u);
  EXPECT_NEAR(v.runners[1].share, 700.0 / 1500, 1e-9);
}

// The probe's tables as a fake: each entry grows at a constant rate from `t0`.
class FakeBlame : public RunqBlameSource {
 public:
  explicit FakeBlame(const uint64_t& now) : now_(now), t0_(now) {}
  struct Rate {
    double caused_ms_per_s = 0, waited_ms_per_s = 0, waits_per_s = 0;
    uint32_t policy = 0, rt_priority = 0;
  };
  void set(uint32_t cpu, uint32_t tgid, Rate r) { rates_[{cpu, tgid}] = r; }
  bool read(std::vector<RunqBlameEntry>& out) override {
    reads++;
    out.clear();
    if (fail) return false;
    const double s = double(now_ - t0_) / double(kSec);
    for (const auto& [k, r] : rates_) {
      RunqBlameEntry e;
      e.cpu = k.first;
      e.tgid = k.second;
      e.caused_ns = uint64_t(r.caused_ms_per_s * s * double(kMs));
      e.waited_ns = uint64_t(r.waited_ms_per_s * s * double(kMs));
      e.waits = uint64_t(r.waits_per_s * s);
      e.tid = k.second;
      e.policy = r.policy;
      e.rt_priority = r.rt_priority;
      e.static_prio = r.policy == kFifo ? 120 : 125;
      out.push_back(e);
    }
    return true;
  }
  int reads = 0;
  bool fail = false;

 private:
  const uint64_t& now_;
  uint64_t t0_;
  std::map<std::pair<uint32_t, uint32_t>, Rate> rates_;
};

TEST(RunqBlameWindow, TakesTheChargesOfTheWindowOnlyAndSurvivesARemovedEntry) {
  uint64_t now = 100 * kSec;
  FakeBlame src(now);
  src.set(0, 100, {.caused_ms_per_s = 900});
  RunqBlameWindow w;
  EXPECT_TRUE(w.update(src, now, 10 * kSec));
  EXPECT_TRUE(w.delta().empty());  // one snapshot: nothing to tell yet
  EXPECT_EQ(w.span_ns(), 0u);
  for (int i = 0; i < 300; i++) {  // 30 s at 100 ms
    now += 100 * kMs;
    ASSERT_TRUE(w.update(src, now, 10 * kSec));
  }
  // The base is the newest snapshot at or before the window's start: 10 to 11 s back.
  EXPECT_GE(w.span_ns(), 10 * kSec);
  EXPECT_LE(w.span_ns(), 11 * kSec);
  std::vector<RunqBlameEntry> d = w.delta();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NEAR(double(d[0].caused_ns), 0.9 * double(w.span_ns()), 0.01 * double(kSec));

  // An entry that lost its slot in the CPU's table and came back starts again from 0: all of it is new.
  class Shrunk : public RunqBlameSource {
   public:
    bool read(std::vector<RunqBlameEntry>& out) override {
      out = {entry(0, 100, 5)};
      return true;
    }
  } shrunk;
  now += 100 * kMs;
  ASSERT_TRUE(w.update(shrunk, now, 10 * kSec));
  d = w.delta();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].caused_ns, 5 * kMs);
  src.fail = true;
  EXPECT_FALSE(w.update(src, now + 100 * kMs, 10 * kSec));
}

RuleConfig runq_rule() {
  RuleConfig r;
  r.cls = FaultClass::RunqStarvation;
  r.threshold = 100;
  r.resolve = 50;
  r.window = 10s;
  r.count = 20;
  return r;
}

// Victims wait ~200 ms for a CPU three times per tick (well above the
// threshold with enough waits); spinners run a core each.
void starve(Sim& s, uint32_t victim) {
  s.set_load(victim, Load{.cores = 0.05, .runq_waits = 3, .runq_wait_ns = 200 * kMs});
}

// A 2-CPU host whose runq_starvation reads the probe's charges from `blame`.
struct BlameSim {
  Sim s{2};
  FakeBlame blame{s.now};
  BlameSim() {
    s.world.runq_blame = &blame;
    s.add(make_runq_starvation(runq_rule()));
  }
};

TEST(RunqStarvationByCpu, EachVictimBlamesTheSpinnerOfItsOwnCpu) {
  BlameSim b;
  Sim& s = b.s;
  FakeBlame& blame = b.blame;
  s.spawn(100, "spin0");
  s.spawn(101, "spin1");
  s.spawn(200, "victim0");
  s.spawn(201, "victim1");
  s.spawn(300, "hog");  // the host's top CPU consumer, on neither victim's CPU's
  s.set_load(100, Load{.cores = 0.95});
  s.set_load(101, Load{.cores = 0.95});
  s.set_load(300, Load{.cores = 1.5});
  starve(s, 200);
  starve(s, 201);
  blame.set(0, 100, {.caused_ms_per_s = 900, .policy = kFifo, .rt_priority = 10});
  blame.set(0, 200, {.caused_ms_per_s = 40, .waited_ms_per_s = 900, .waits_per_s = 2});
  blame.set(1, 101, {.caused_ms_per_s = 800, .policy = kFifo, .rt_priority = 20});
  blame.set(1, 201, {.waited_ms_per_s = 800, .waits_per_s = 2});
  blame.set(1, 300, {.caused_ms_per_s = 50});
  blame.set(2, 300, {.waited_ms_per_s = 5000});  // a CPU neither victim waited on
  s.run(0.5);  // 15 waits each: not yet victims (count = 20), and the probe's tables are not read
  EXPECT_EQ(blame.reads, 0);
  s.run(11.5);
  ASSERT_EQ(s.findings.size(), 2u);
  const Finding* f0 = s.finding_for(100);
  const Finding* f1 = s.finding_for(101);
  ASSERT_NE(f0, nullptr);
  ASSERT_NE(f1, nullptr);
  EXPECT_EQ(f0->victims, (std::vector<uint32_t>{200}));
  EXPECT_EQ(f1->victims, (std::vector<uint32_t>{201}));
  EXPECT_TRUE(f0->strong);
  const auto& ev = f0->evidence;
  EXPECT_EQ(ev["attribution"], "cpu_runners");
  EXPECT_EQ(ev["culprit"]["pid"], 100);
  EXPECT_EQ(ev["culprit"]["comm"], "spin0");
  EXPECT_EQ(ev["culprit"]["policy"], "SCHED_FIFO");
  EXPECT_EQ(ev["culprit"]["rt_priority"], 10);
  EXPECT_EQ(ev["culprit"]["nice"], 0);
  EXPECT_EQ(ev["culprit"]["cpu"], 0);
  EXPECT_NEAR(ev["culprit"]["share"].get<double>(), 1.0, 0.01);
  ASSERT_EQ(ev["victims"].size(), 1u);
  EXPECT_EQ(ev["victims"][0]["pid"], 200);
  EXPECT_EQ(ev["victims"][0]["cpus"], nlohmann::json::array({0}));
  EXPECT_NEAR(ev["victims"][0]["culprit_share"].get<double>(), 1.0, 0.01);
  EXPECT_GE(ev["victims"][0]["runq_p99_ms"].get<double>(), 100);
  EXPECT_EQ(ev["victims"][0]["runners"][0]["pid"], 100);
  // CPU 1's victim: the spinner 16 of 17 parts, the hog (which ran there a little) 1.
  EXPECT_EQ(f1->evidence["culprit"]["rt_priority"], 20);
  EXPECT_NEAR(f1->evidence["victims"][0]["culprit_share"].get<double>(), 800.0 / 850, 0.01);
  EXPECT_EQ(f1->evidence["victims"][0]["runners"][1]["pid"], 300);
}

TEST(RunqStarvationByCpu, ASpinnerThatWaitsUnderRtThrottlingIsStillTheCulprit) {
  BlameSim b;
  Sim& s = b.s;
  FakeBlame& blame = b.blame;
  s.spawn(100, "spin");
  s.spawn(200, "victim");
  s.set_load(100, Load{.cores = 0.95, .runq_waits = 3, .runq_wait_ns = 150 * kMs});  // a victim too
  starve(s, 200);
  // Each blames the other; the spinner caused 950 ms of waits per second, the victim 50.
  blame.set(1, 100, {.caused_ms_per_s = 950, .waited_ms_per_s = 50, .waits_per_s = 1, .policy = kFifo,
                     .rt_priority = 10});
  blame.set(1, 200, {.caused_ms_per_s = 50, .waited_ms_per_s = 950, .waits_per_s = 1});
  s.run(12);
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].victims, (std::vector<uint32_t>{200}));
  EXPECT_EQ(s.seen.count(200), 0u);  // never the other way round
}

TEST(RunqStarvationByCpu, NoCulpritBelowAQuarterOfTheWaitOrWhenTheHolderIsProtected) {
  BlameSim b;
  Sim& s = b.s;
  FakeBlame& blame = b.blame;
  s.protected_comms = {"guard"};
  s.spawn(200, "victim");
  starve(s, 200);
  // Five runners of 20 % each on the victim's CPU, and a protected holder of another victim's.
  for (uint32_t t = 100; t < 105; t++) {
    s.spawn(t, "worker");
    blame.set(0, t, {.caused_ms_per_s = 100});
  }
  blame.set(0, 200, {.waited_ms_per_s = 500, .waits_per_s = 5});
  s.spawn(201, "victim2");
  s.spawn(110, "guard");
  starve(s, 201);
  blame.set(1, 110, {.caused_ms_per_s = 900});
  blame.set(1, 201, {.waited_ms_per_s = 900, .waits_per_s = 3});
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
}

// A busy host (measured: a loopback HTTP client beside kdamond.0 at load 10):
// the victim's few waits are long, and the runner with the largest share of
// them (30 %) cost it 16 ms a second, 1.6 % of the window. Nobody starves it.
TEST(RunqStarvationByCpu, NoCulpritThatCostTheVictimLittleOfTheWindow) {
  BlameSim b;
  Sim& s = b.s;
  FakeBlame& blame = b.blame;
  s.spawn(200, "kdamond.0");
  starve(s, 200);
  s.spawn(100, "python3");
  s.spawn(101, "cc1plus");
  blame.set(0, 100, {.caused_ms_per_s = 16});
  blame.set(0, 101, {.caused_ms_per_s = 10});
  blame.set(1, 101, {.caused_ms_per_s = 10});
  blame.set(0, 200, {.waited_ms_per_s = 53, .waits_per_s = 3});
  s.run(12);
  EXPECT_TRUE(s.seen.empty());
  // The same victim, the same runner at 30 % of a wait ten times as long: named.
  blame.set(0, 100, {.caused_ms_per_s = 160});
  blame.set(0, 101, {.caused_ms_per_s = 100});
  blame.set(1, 101, {.caused_ms_per_s = 100});
  blame.set(0, 200, {.waited_ms_per_s = 530, .waits_per_s = 3});
  s.run(12);
  ASSERT_NE(s.finding_for(100), nullptr);
}

}  // namespace
}  // namespace fp
