#include "detect/process_table.h"
#include "probe/delta.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include "synthetic.h"

namespace fp {
namespace {

using namespace synthetic;

constexpr uint64_t kPage = 4096;


TEST(Metrics, OfSlot) {
  fp_proc p = proc(10, 5);
  p.cpu_ns = 7;
  p.dstate_ns = 100;
  p.dstate_since_ns = 1000;
  p.io_read_reqs = 3;
  p.io_write_reqs = 4;
  p.rss_pages[0] = 2;  // file
  p.rss_pages[1] = 3;  // anon
  Metrics m = metrics_of(p, 1500, kPage);
  EXPECT_EQ(m.cpu_ns, 7u);
  EXPECT_EQ(m.dstate_ongoing_ns, 500u);
  EXPECT_EQ(m.dstate_ns, 600u);
  EXPECT_EQ(m.io_reqs, 7u);
  EXPECT_EQ(m.rss_bytes, rss_bytes_of(p, kPage));
  EXPECT_GT(m.rss_bytes, 0u);
  // A D-state that starts after ts (clock skew between copies) counts as none.
  EXPECT_EQ(metrics_of(p, 900, kPage).dstate_ongoing_ns, 0u);
  p.dstate_since_ns = 0;
  EXPECT_EQ(metrics_of(p, 1500, kPage).dstate_ns, 100u);
}

// A process that burns `cpu_per_tick` of CPU every 100 ms tick, from kT0 for `ticks` ticks.
uint64_t run_busy(ProcessTable& t, fp_proc& p, uint64_t from, int ticks, uint64_t cpu_per_tick) {
  uint64_t now = from;
  for (int i = 0; i < ticks; ++i) {
    now = from + static_cast<uint64_t>(i) * 100 * kMs;
    p.cpu_ns += cpu_per_tick;
    t.update(now, p);
    t.end_tick(now);
  }
  return now;
}

TEST(ProcessTable, FineWindowOfBusyProcess) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t now = run_busy(t, p, kT0, 30, 50 * kMs);  // 3 s at half a core
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, now, kSec);
  EXPECT_TRUE(w.full);
  EXPECT_EQ(w.span_ns, kSec);
  EXPECT_EQ(w.delta.cpu_ns, 500 * kMs);  // exactly 10 ticks of changes in (now-1s, now]
  WindowDelta w2 = t.window(*s, now, 2 * kSec);
  EXPECT_TRUE(w2.full);
  EXPECT_EQ(w2.delta.cpu_ns, 1000 * kMs);
}

TEST(ProcessTable, YoungProcessWindowIsFromItsFirstPoint) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  p.cpu_ns = 10 * kSec;  // history from before we watched: not part of any window
  uint64_t now = run_busy(t, p, kT0, 5, 50 * kMs);
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, now, 10 * kSec);
  EXPECT_FALSE(w.full);
  EXPECT_EQ(w.span_ns, 400 * kMs);
  EXPECT_EQ(w.delta.cpu_ns, 200 * kMs);  // the 4 ticks after the first one
}

TEST(ProcessTable, SlotCreationIsAZeroPoint) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  p.first_seen_ns = kT0 - 300 * kMs;  // the probe created the slot before our first look
  p.cpu_ns = 250 * kMs;
  p.io_errors = 2;
  p.rss_pages[1] = 1000;
  t.update(kT0, p);
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->first_seen_ns, p.first_seen_ns);
  WindowDelta w = t.window(*s, kT0, 10 * kSec);
  EXPECT_FALSE(w.full);
  EXPECT_EQ(w.span_ns, 300 * kMs);
  EXPECT_EQ(w.delta.cpu_ns, 250 * kMs);
  EXPECT_EQ(w.delta.io_errors, 2u);
  // RSS is a gauge: what it was when first seen is not growth.
  EXPECT_EQ(w.rss_start, w.rss_end);
  EXPECT_EQ(w.rss_end, 1000 * kPage);
}

TEST(ProcessTable, IdleProcessHasZeroDelta) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t last = run_busy(t, p, kT0, 20, 50 * kMs);
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  // Nothing changes for 5 s: no updates at all.
  uint64_t now = last + 5 * kSec;
  for (uint64_t span : {kSec, 2 * kSec, 3 * kSec}) {
    WindowDelta w = t.window(*s, now, span);
    EXPECT_TRUE(w.full) << span;
    EXPECT_EQ(w.span_ns, span);
    EXPECT_EQ(w.delta.cpu_ns, 0u) << span;
  }
  // A window reaching back into the busy part sees only that part.
  WindowDelta w = t.window(*s, now, 5 * kSec + 500 * kMs);
  EXPECT_EQ(w.delta.cpu_ns, 5 * 50 * kMs);
  // The same updates repeated (slot reported, nothing changed) add nothing.
  t.update(now, p);
  EXPECT_EQ(t.window(*s, now, kSec).delta.cpu_ns, 0u);
}

TEST(ProcessTable, CoarseWindowCoversLongSpans) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t now = run_busy(t, p, kT0, 700, 20 * kMs);  // 70 s at 0.2 cores
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  for (uint64_t span : {5 * kSec, 10 * kSec, 60 * kSec}) {
    WindowDelta w = t.window(*s, now, span);
    EXPECT_TRUE(w.full) << span;
    EXPECT_GE(w.span_ns, span);
    EXPECT_LT(w.span_ns, span + kSec);
    // Exact over the span it reports: 0.2 cores.
    double cores = static_cast<double>(w.delta.cpu_ns) / static_cast<double>(w.span_ns);
    EXPECT_NEAR(cores, 0.2, 0.2 * 100 * kMs / static_cast<double>(span)) << span;
  }
  // Beyond what is kept: the oldest point, not full.
  WindowDelta w = t.window(*s, now, 120 * kSec);
  EXPECT_FALSE(w.full);
  EXPECT_LE(w.span_ns, 67 * kSec);
  EXPECT_GE(w.span_ns, 64 * kSec);
}

TEST(ProcessTable, CoarseWindowOfBurstAfterIdleIsExact) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  run_busy(t, p, kT0, 10, 10 * kMs);                      // [0, 0.9 s]
  uint64_t now = run_busy(t, p, kT0 + 20 * kSec, 5, kSec);  // [20, 20.4 s]: a burst after 19 s idle
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, now, 10 * kSec);
  EXPECT_TRUE(w.full);
  EXPECT_EQ(w.span_ns, 10 * kSec);
  EXPECT_EQ(w.delta.cpu_ns, 5 * kSec);
}

TEST(ProcessTable, PidReuseStartsFresh) {
  ProcessTable t(kPage);
  fp_proc old_p = proc(100, 1, "old");
  old_p.cpu_ns = 10 * kSec;
  old_p.io_errors = 5;
  uint64_t now = run_busy(t, old_p, kT0, 10, 50 * kMs);

  // The pid is reused: no exit event was seen for the old process.
  now += 100 * kMs;
  fp_proc new_p = proc(100, 2, "new");
  new_p.cpu_ns = 10 * kMs;
  t.update(now, new_p);
  const ProcState* old_s = t.find({100, 1});
  ASSERT_NE(old_s, nullptr);
  EXPECT_TRUE(old_s->exited);  // detectors see it once more, as gone
  const ProcState* s = t.find_pid(100);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->key, (ProcKey{100, 2}));
  EXPECT_EQ(s->comm, "new");
  WindowDelta w = t.window(*s, now, 10 * kSec);
  EXPECT_EQ(w.delta.cpu_ns, 0u);
  EXPECT_EQ(w.delta.io_errors, 0u);
  t.end_tick(now);
  EXPECT_EQ(t.find({100, 1}), nullptr);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.find_pid(100)->key, (ProcKey{100, 2}));
}

TEST(ProcessTable, LateExitOfOldOwnerDoesNotStealThePid) {
  ProcessTable t(kPage);
  fp_proc old_p = proc(100, 1, "old");
  run_busy(t, old_p, kT0, 3, kMs);
  uint64_t now = kT0 + kSec;
  fp_proc new_p = proc(100, 2, "new");
  t.update(now, new_p);
  ExitRecord ex;
  ex.ts_ns = now - 50 * kMs;
  ex.exit_code = 11;
  ex.final = old_p;
  t.exited(now, ex);
  EXPECT_EQ(t.find_pid(100)->key, (ProcKey{100, 2}));
  ASSERT_NE(t.find({100, 1}), nullptr);
  EXPECT_TRUE(t.find({100, 1})->exited);
  EXPECT_EQ(t.find({100, 1})->exit_code, 11u);
  t.end_tick(now);
  EXPECT_EQ(t.find({100, 1}), nullptr);
  EXPECT_EQ(t.find_pid(100)->key, (ProcKey{100, 2}));
}

TEST(ProcessTable, ExitIsSeenForOneTickThenRemoved) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t now = run_busy(t, p, kT0, 5, 10 * kMs);
  now += 100 * kMs;
  ExitRecord ex;
  ex.ts_ns = now - 10 * kMs;
  ex.exit_code = 0x8b;  // SIGSEGV, core dumped
  ex.final = p;
  ex.final.cpu_ns += 5 * kMs;
  t.exited(now, ex);
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->exited);
  EXPECT_EQ(s->exit_code, 0x8bu);
  EXPECT_EQ(t.window(*s, now, 200 * kMs).delta.cpu_ns, 15 * kMs);
  t.end_tick(now);
  EXPECT_EQ(t.find({100, 1}), nullptr);
  EXPECT_EQ(t.find_pid(100), nullptr);
  EXPECT_EQ(t.size(), 0u);
}

TEST(ProcessTable, ShortLivedProcessSeenOnlyAtExit) {
  ProcessTable t(kPage);
  fp_proc p = proc(200, 7, "dd");
  p.first_seen_ns = kT0 - 40 * kMs;
  p.io_errors = 3;
  p.io_read_reqs = 10;
  ExitRecord ex;
  ex.ts_ns = kT0 - 5 * kMs;
  ex.exit_code = 1 << 8;
  ex.final = p;
  t.exited(kT0, ex);
  const ProcState* s = t.find({200, 7});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, kT0, 10 * kSec);
  EXPECT_EQ(w.delta.io_errors, 3u);
  EXPECT_EQ(w.delta.io_reqs, 10u);
  EXPECT_FALSE(w.full);
}

TEST(ProcessTable, OngoingDStateGrowsWithoutUpdates) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  p.dstate_ns = 1 * kSec;  // finished ones
  t.update(kT0, p);
  p.dstate_since_ns = kT0 + 50 * kMs;
  p.dstate_active = 1;
  t.update(kT0 + 100 * kMs, p);
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  uint64_t now = kT0 + 30 * kSec + 50 * kMs;  // no updates for 30 s: the thread is stuck
  WindowDelta w = t.window(*s, now, 10 * kSec);
  EXPECT_EQ(w.delta.dstate_ongoing_ns, 30 * kSec);
  EXPECT_EQ(w.delta.dstate_ns, 10 * kSec);  // all of the window was spent in D
  WindowDelta w1 = t.window(*s, now, kSec);
  EXPECT_EQ(w1.delta.dstate_ns, kSec);
}

TEST(ProcessTable, RssRangeAndGrowth) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t now = kT0;
  // 20 s: RSS grows by 256 pages every second (one change per tick, 10 ticks a second).
  for (int i = 0; i < 200; ++i) {
    now = kT0 + static_cast<uint64_t>(i) * 100 * kMs;
    p.cpu_ns += kMs;
    if (i % 10 == 0) p.rss_pages[1] += 256;
    t.update(now, p);
  }
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, now, 10 * kSec);
  EXPECT_GT(w.rss_end, w.rss_start);
  auto [rss_min, rss_max] = t.rss_range(*s, now, 10 * kSec);
  EXPECT_EQ(rss_min, w.rss_start);
  EXPECT_EQ(rss_max, w.rss_end);
  EXPECT_EQ(w.delta.rss_bytes, w.rss_end);
  EXPECT_GE(w.rss_growing_fraction, 0.9);
  // Flat afterwards: no growth.
  for (int i = 200; i < 320; ++i) {
    now = kT0 + static_cast<uint64_t>(i) * 100 * kMs;
    p.cpu_ns += kMs;
    t.update(now, p);
  }
  w = t.window(*s, now, 10 * kSec);
  EXPECT_EQ(w.rss_growing_fraction, 0.0);
  EXPECT_EQ(w.rss_start, w.rss_end);
  // A dip in the middle of the span shows in the minimum.
  p.rss_pages[1] -= 1000;
  t.update(now + 100 * kMs, p);
  p.rss_pages[1] += 1000;
  t.update(now + 200 * kMs, p);
  w = t.window(*s, now + 200 * kMs, kSec);
  EXPECT_EQ(t.rss_range(*s, now + 200 * kMs, kSec).first, w.rss_end - 1000 * kPage);
}

TEST(ProcessTable, HistogramDeltas) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  uint64_t now = kT0;
  for (int i = 0; i < 150; ++i) {  // 15 s: one 1-4 ms IO per tick (bucket 10), and one runq wait
    now = kT0 + static_cast<uint64_t>(i) * 100 * kMs;
    p.io_lat_hist[10] += 1;
    p.io_read_reqs += 1;
    p.runq_hist[3] += 1;
    t.update(now, p);
  }
  const ProcState* s = t.find({100, 1});
  ASSERT_NE(s, nullptr);
  WindowDelta w = t.window(*s, now, 10 * kSec);
  // 1 s resolution: between 100 and 110 of them.
  EXPECT_GE(w.io_lat_hist[10], 100u);
  EXPECT_LE(w.io_lat_hist[10], 110u);
  EXPECT_EQ(w.io_lat_hist[9], 0u);
  EXPECT_EQ(w.io_lat_hist[10], w.runq_hist[3]);
}

TEST(ProcessTable, Ancestors) {
  ProcessTable t(kPage);
  fp_proc a = proc(10, 1, "init-ish");
  a.ppid = 1;
  fp_proc b = proc(20, 2, "shell");
  b.ppid = 10;
  fp_proc c = proc(30, 3, "child");
  c.ppid = 20;
  t.update(kT0, a);
  t.update(kT0, b);
  t.update(kT0, c);
  auto chain = t.ancestors(*t.find_pid(30));
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0]->key.tgid, 20u);
  EXPECT_EQ(chain[1]->key.tgid, 10u);
  // A cycle (ppid data raced) ends instead of looping.
  a.ppid = 30;
  a.cpu_ns = 1;
  t.update(kT0 + kSec, a);
  EXPECT_EQ(t.ancestors(*t.find_pid(30)).size(), 2u);
}

TEST(ProcessTable, FreedSlotsAreIgnored) {
  ProcessTable t(kPage);
  fp_proc freed{};
  t.update(kT0, freed);
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace fp

namespace fp {
namespace {

// The state of a process at any time, from every change kept in full: what
// a window must agree with.
struct Reference {
  std::vector<std::pair<uint64_t, fp_proc>> changes;
  Metrics at(uint64_t t) const {
    const fp_proc* p = nullptr;
    for (const auto& [ts, q] : changes) {
      if (ts <= t) p = &q;
    }
    return p != nullptr ? metrics_of(*p, t, kPage) : Metrics{};
  }
};

TEST(ProcessTable, WindowsAgreeWithFullHistory) {
  uint64_t seed = 12345;
  auto rnd = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  for (int round = 0; round < 5; ++round) {
    ProcessTable t(kPage);
    // Fed the same: `often`, asked for every window at every tick (its
    // cursors step forward a point or two at a time), agrees with `rare`,
    // asked every 3.1 s (its cursors are dropped in between: every window is
    // found by walking back from the newest point).
    ProcessTable often(kPage), rare(kPage);
    Reference ref;
    fp_proc p = proc(100, 1);
    uint64_t now = kT0;
    for (int i = 0; i < 1200; ++i) {  // 120 s of ticks
      // Ticks are 100 ms apart give or take scheduling jitter (round 0: exact, on second boundaries).
      now = kT0 + static_cast<uint64_t>(i) * 100 * kMs + (round == 0 ? 0 : rnd(20 * kMs));
      // Bursts and idle stretches; sometimes a D-state begins or ends.
      bool active = (i / (5 + round * 7)) % 3 != 0;
      if (active && rnd(4) != 0) {
        p.cpu_ns += rnd(100 * kMs);
        p.runq_wait_ns += rnd(10 * kMs);
        p.runq_waits += rnd(50);
        p.io_read_bytes += rnd(4) == 0 ? rnd(1u << 24) : 0;
        p.io_errors += rnd(50) == 0 ? 1 : 0;
        p.page_faults += rnd(1000);
        p.rss_pages[1] += static_cast<int64_t>(rnd(200)) - 90;
        p.io_lat_hist[rnd(FP_HIST_SLOTS)] += 1;
        if (rnd(30) == 0) {
          if (p.dstate_since_ns != 0) {
            p.dstate_ns += now - p.dstate_since_ns;
            p.dstate_since_ns = 0;
          } else {
            p.dstate_since_ns = now - rnd(50 * kMs);
          }
        }
        t.update(now, p);
        often.update(now, p);
        rare.update(now, p);
        ref.changes.emplace_back(now, p);
      }
      t.end_tick(now);
      often.end_tick(now);
      rare.end_tick(now);
      constexpr uint64_t kSpans[] = {100 * kMs, kSec, 1500 * kMs, 2 * kSec, 5 * kSec, 10 * kSec, 30 * kSec, 60 * kSec};
      if (const ProcState* o = often.find({100, 1})) {
        for (uint64_t span : kSpans) {
          WindowDelta w = often.window(*o, now, span);
          if (i % 31 != 0) continue;
          WindowDelta r = rare.window(*rare.find({100, 1}), now, span);
          ASSERT_EQ(std::memcmp(&w.delta, &r.delta, sizeof w.delta), 0) << "i " << i << " span " << span;
          ASSERT_EQ(w.span_ns, r.span_ns);
          ASSERT_EQ(w.full, r.full);
          ASSERT_EQ(w.rss_start, r.rss_start);
          ASSERT_EQ(w.rss_growing_fraction, r.rss_growing_fraction) << "i " << i << " span " << span;
          ASSERT_EQ(w.runq_hist, r.runq_hist);
          ASSERT_EQ(w.io_lat_hist, r.io_lat_hist);
          ASSERT_EQ(w.stable_until_ns, r.stable_until_ns) << "i " << i << " span " << span;
        }
      }
      if (i % 7 != 0) continue;
      const ProcState* s = t.find({100, 1});
      if (s == nullptr) continue;
      for (uint64_t span : kSpans) {
        WindowDelta w = t.window(*s, now, span);
        uint64_t start = now - w.span_ns;
        if (w.full) {
          EXPECT_GE(w.span_ns, span);
          EXPECT_LT(w.span_ns, span + kSec);
        }
        Metrics a = ref.at(start), b = ref.at(now);
        ASSERT_EQ(w.delta.cpu_ns, b.cpu_ns - a.cpu_ns) << "round " << round << " i " << i << " span " << span;
        ASSERT_EQ(w.delta.runq_waits, b.runq_waits - a.runq_waits);
        ASSERT_EQ(w.delta.io_read_bytes, b.io_read_bytes - a.io_read_bytes);
        ASSERT_EQ(w.delta.io_errors, b.io_errors - a.io_errors);
        ASSERT_EQ(w.delta.page_faults, b.page_faults - a.page_faults);
        ASSERT_EQ(w.delta.dstate_ns, b.dstate_ns - a.dstate_ns) << "i " << i << " span " << span;
        ASSERT_EQ(w.delta.dstate_ongoing_ns, b.dstate_ongoing_ns);
        ASSERT_EQ(w.rss_end, b.rss_bytes);
        ASSERT_EQ(w.rss_start, a.rss_bytes);
        auto [rss_min, rss_max] = t.rss_range(*s, now, span);
        ASSERT_LE(rss_min, std::min(a.rss_bytes, b.rss_bytes));
        ASSERT_GE(rss_max, std::max(a.rss_bytes, b.rss_bytes));
      }
    }
  }
}

TEST(ProcessTable, MemoryStaysWithinBudget) {
  ProcessTable t(kPage);
  fp_proc p = proc(100, 1);
  size_t empty = t.memory_bytes();
  // Every counter changes at every tick for 100 s.
  for (int i = 0; i < 1000; ++i) {
    uint64_t now = kT0 + static_cast<uint64_t>(i) * 100 * kMs;
    p.cpu_ns += 37 * kMs + static_cast<uint64_t>(i);
    p.runq_wait_ns += 3 * kMs;
    p.runq_waits += 40;
    p.nvcsw += 30;
    p.nivcsw += 10;
    p.forks += 1;
    p.io_read_bytes += 1 << 20;
    p.io_write_bytes += 1 << 19;
    p.io_read_reqs += 8;
    p.io_write_reqs += 4;
    p.io_lat_ns += 9 * kMs;
    p.page_faults += 500;
    p.reclaim_ns += kMs;
    p.reclaims += 1;
    p.rss_pages[1] += 100;
    for (unsigned b = 2; b < 8; ++b) p.runq_hist[b] += b;
    for (unsigned b = 8; b < 14; ++b) p.io_lat_hist[b] += b;
    t.update(now, p);
    t.end_tick(now);
  }
  size_t per_process = t.memory_bytes() - empty;
  EXPECT_LE(per_process, 8u * 1024) << per_process;
  std::printf("busy process: %zu bytes\n", per_process);
}

// ---- what the table keeps of a slot (no copy of the whole fp_proc) ---------

bool same_metrics(const Metrics& a, const Metrics& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(ProcessTable, MetricsAtMatchTheSlotsMetrics) {
  // metrics_at() of the kept state gives what metrics_of() of the whole slot
  // gave, for D-states finished, ongoing, starting after the sample, none.
  for (uint64_t since : {uint64_t{0}, kT0 - 3 * kSec, kT0, kT0 + 50 * kMs}) {
    ProcessTable t(kPage);
    fp_proc p = proc(40, 2);
    p.cpu_ns = 123;
    p.dstate_ns = 7 * kMs;
    p.dstate_since_ns = since;
    p.dstate_active = since != 0 ? 2 : 0;
    p.rss_pages[1] = 10;
    t.update(kT0, p);
    const ProcState* s = t.find({40, 2});
    ASSERT_NE(s, nullptr);
    for (uint64_t at : {kT0, kT0 + 10 * kMs, kT0 + 2 * kSec}) {
      EXPECT_TRUE(same_metrics(metrics_at(*s, at), metrics_of(p, at, kPage))) << "since " << since << " at " << at;
    }
  }
}

TEST(ProcessTable, KeepsTheSlotFieldsTheDetectorsRead) {
  ProcessTable t(kPage);
  fp_proc p = proc(41, 2);
  p.dstate_since_ns = kT0 - kSec;
  p.dstate_active = 3;
  p.io_dev = (8u << 20) | 16u;
  p.runq_wait_max_ns = 5 * kMs;
  p.io_lat_max_ns = 9 * kMs;
  p.runq_hist[4] = 11;
  p.io_lat_hist[31] = 12;
  t.update(kT0, p);
  const ProcState* s = t.find({41, 2});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->slot.dstate_since_ns, p.dstate_since_ns);
  EXPECT_EQ(s->slot.dstate_active, 3);
  EXPECT_EQ(s->slot.io_dev, p.io_dev);
  EXPECT_EQ(s->slot.runq_wait_max_ns, p.runq_wait_max_ns);
  EXPECT_EQ(s->slot.io_lat_max_ns, p.io_lat_max_ns);
  Hist runq{}, io{};
  runq[4] = 11;
  io[31] = 12;
  EXPECT_EQ(s->slot.runq_hist(), runq);
  EXPECT_EQ(s->slot.io_lat_hist(), io);
  // Far less than the slot it replaces (the table held 10,000 of them), and
  // a few buckets stay in the string's inline bytes.
  EXPECT_LT(sizeof(SlotFields) + sizeof(uint64_t), sizeof(fp_proc) / 4);
  EXPECT_LE(s->slot.hists.size(), 15u);
}

TEST(ProcessTable, PackedHistogramsRoundTrip) {
  fp_proc p = proc(44, 2);
  SlotFields none = slot_fields_of(p);
  EXPECT_TRUE(none.hists.empty());
  EXPECT_EQ(none.runq_hist(), Hist{});
  EXPECT_EQ(none.io_lat_hist(), Hist{});
  Hist runq{}, io{};
  for (unsigned i = 0; i < FP_HIST_SLOTS; ++i) {
    // zeros, small values and the largest: every LEB128 length
    const uint32_t r = i % 3 == 0 ? 0 : i % 3 == 1 ? i : UINT32_MAX - i;
    const uint32_t o = i % 2 == 0 ? 0 : (1u << (i % 32)) + 1;
    p.runq_hist[i] = r;
    p.io_lat_hist[i] = o;
    runq[i] = r;
    io[i] = o;
  }
  SlotFields f = slot_fields_of(p);
  EXPECT_EQ(f.runq_hist(), runq);
  EXPECT_EQ(f.io_lat_hist(), io);
  fp_proc only_io = proc(45, 2);
  only_io.io_lat_hist[FP_HIST_SLOTS - 1] = 7;
  SlotFields g = slot_fields_of(only_io);
  EXPECT_EQ(g.runq_hist(), Hist{});
  EXPECT_EQ(g.io_lat_hist()[FP_HIST_SLOTS - 1], 7u);
}

TEST(ProcessTable, RecordsASlotOnlyWhenAnyOfItChanged) {
  ProcessTable t(kPage);
  fp_proc p = proc(42, 2);
  t.update(kT0, p);
  t.end_tick(kT0);
  const ProcState* s = t.find({42, 2});
  ASSERT_NE(s, nullptr);
  // The same slot again: nothing recorded.
  t.update(kT0 + 100 * kMs, p);
  EXPECT_EQ(s->last_update_ns, kT0);
  // A field the table does not keep (threads created) still counts as a
  // change, as it did when the table compared a whole copy.
  p.threads = 1;
  t.update(kT0 + 200 * kMs, p);
  EXPECT_EQ(s->last_update_ns, kT0 + 200 * kMs);
  p.last_fatal_sig = 11;
  t.update(kT0 + 300 * kMs, p);
  EXPECT_EQ(s->last_update_ns, kT0 + 300 * kMs);
  t.update(kT0 + 400 * kMs, p);
  EXPECT_EQ(s->last_update_ns, kT0 + 300 * kMs);
}

TEST(ProcessTable, SlotDigestSeesEveryByte) {
  fp_proc a = proc(43, 2);
  const uint64_t d = slot_digest(a);
  auto* bytes = reinterpret_cast<unsigned char*>(&a);
  for (size_t i = 0; i < sizeof a; ++i) {
    bytes[i] ^= 1;
    EXPECT_NE(slot_digest(a), d) << "byte " << i;
    bytes[i] ^= 1;
  }
  EXPECT_EQ(slot_digest(a), d);
}

TEST(ProcessTable, LostProcessExitsAsItWasAndGoesAtTheTicksEnd) {
  ProcessTable t(kPage);
  fp_proc p = proc(46, 2);
  p.cpu_ns = 5 * kMs;
  t.update(kT0, p);
  t.end_tick(kT0);
  t.lost({46, 2});
  const ProcState* s = t.find({46, 2});
  ASSERT_NE(s, nullptr);  // the detectors see it once more, exited
  EXPECT_TRUE(s->exited);
  EXPECT_EQ(s->exit_code, 0u);
  EXPECT_EQ(s->now.cpu_ns, 5 * kMs);
  EXPECT_EQ(s->last_update_ns, kT0);  // nothing new recorded
  t.lost({47, 2});                     // unknown: nothing
  t.end_tick(kT0 + kTick);
  EXPECT_EQ(t.find({46, 2}), nullptr);
  ASSERT_EQ(t.removed().size(), 1u);
  EXPECT_EQ(t.removed()[0], (ProcKey{46, 2}));
}

}  // namespace
}  // namespace fp
