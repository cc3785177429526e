#include "probe/delta.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace fp {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kUs = 1000;

fp_proc proc(uint32_t tgid, uint64_t start_ns, const char* comm = "worker") {
  fp_proc p{};
  p.gen = 1;
  p.tgid = tgid;
  p.start_ns = start_ns;
  // No NUL when comm fills all 16 bytes, as a raw kernel copy can be.
  std::memcpy(p.comm, comm, strnlen(comm, FP_COMM_LEN));
  return p;
}

Sample sample(uint64_t ts, std::vector<fp_proc> procs) {
  Sample s;
  s.ts_ns = ts;
  s.procs = std::move(procs);
  return s;
}

ExitRecord exit_of(const fp_proc& final, uint64_t ts, uint32_t raw_code) {
  ExitRecord e;
  e.ts_ns = ts;
  e.exit_code = raw_code;
  e.final = final;
  return e;
}

const ProcDelta* find(const std::vector<ProcDelta>& ds, uint32_t tgid, uint64_t start_ns) {
  for (const ProcDelta& d : ds) {
    if (d.key == ProcKey{tgid, start_ns}) return &d;
  }
  return nullptr;
}

// Every cumulative counter set to a distinct value scaled by `k`.
void fill_counters(fp_proc& p, uint64_t k) {
  p.cpu_ns = 1000 * k;
  p.runq_wait_ns = 2000 * k;
  p.runq_waits = 3 * k;
  p.nvcsw = 4 * k;
  p.nivcsw = 5 * k;
  p.dstate_ns = 6 * k;
  p.threads = static_cast<uint32_t>(7 * k);
  p.forks = 8 * k;
  p.execs = 9 * k;
  p.io_read_bytes = 10 * k;
  p.io_write_bytes = 11 * k;
  p.io_read_reqs = 12 * k;
  p.io_write_reqs = 13 * k;
  p.io_lat_ns = 14 * k;
  p.io_errors = 15 * k;
  p.page_faults = 16 * k;
  p.reclaim_ns = 17 * k;
  p.reclaims = 18 * k;
  p.oom_victim = 19 * k;
  p.fatal_signals = 20 * k;
  p.io_submit_read_bytes = 21 * k;
  p.io_submit_write_bytes = 22 * k;
  p.io_cancelled_write_bytes = 23 * k;
  p.dirty_throttle_ns = 24 * k;
  p.dirty_throttles = 25 * k;
}

void expect_counters(const ProcDelta& d, uint64_t k) {
  EXPECT_EQ(d.cpu_ns, 1000 * k);
  EXPECT_EQ(d.runq_wait_ns, 2000 * k);
  EXPECT_EQ(d.runq_waits, 3 * k);
  EXPECT_EQ(d.nvcsw, 4 * k);
  EXPECT_EQ(d.nivcsw, 5 * k);
  EXPECT_EQ(d.dstate_ns, 6 * k);
  EXPECT_EQ(d.threads, 7 * k);
  EXPECT_EQ(d.forks, 8 * k);
  EXPECT_EQ(d.execs, 9 * k);
  EXPECT_EQ(d.io_read_bytes, 10 * k);
  EXPECT_EQ(d.io_write_bytes, 11 * k);
  EXPECT_EQ(d.io_read_reqs, 12 * k);
  EXPECT_EQ(d.io_write_reqs, 13 * k);
  EXPECT_EQ(d.io_lat_ns, 14 * k);
  EXPECT_EQ(d.io_errors, 15 * k);
  EXPECT_EQ(d.page_faults, 16 * k);
  EXPECT_EQ(d.reclaim_ns, 17 * k);
  EXPECT_EQ(d.io_submit_read_bytes, 21 * k);
  EXPECT_EQ(d.io_submit_write_bytes, 22 * k);
  EXPECT_EQ(d.io_cancelled_write_bytes, 23 * k);
  EXPECT_EQ(d.dirty_throttle_ns, 24 * k);
  EXPECT_EQ(d.dirty_throttles, 25 * k);
  EXPECT_EQ(d.reclaims, 18 * k);
  EXPECT_EQ(d.oom_victim, 19 * k);
  EXPECT_EQ(d.fatal_signals, 20 * k);
}

// ---- decode_exit_code / rss_bytes_of ----

TEST(DecodeExitCode, NormalExit) {
  ExitStatus s = decode_exit_code(0);
  EXPECT_EQ(s.status, 0);
  EXPECT_EQ(s.signal, 0);
  EXPECT_FALSE(s.core);
  s = decode_exit_code(3 << 8);
  EXPECT_EQ(s.status, 3);
  EXPECT_EQ(s.signal, 0);
  s = decode_exit_code(255 << 8);
  EXPECT_EQ(s.status, 255);
}

TEST(DecodeExitCode, KilledBySignal) {
  ExitStatus s = decode_exit_code(SIGKILL);
  EXPECT_EQ(s.status, 0);
  EXPECT_EQ(s.signal, SIGKILL);
  EXPECT_FALSE(s.core);
  s = decode_exit_code(0x80 | SIGSEGV);
  EXPECT_EQ(s.signal, SIGSEGV);
  EXPECT_TRUE(s.core);
  EXPECT_EQ(s.status, 0);
}

TEST(DecodeExitCode, IgnoresBitsAboveStatus) {
  ExitStatus s = decode_exit_code(0xABCD0000u | (7 << 8) | 0x80 | SIGABRT);
  EXPECT_EQ(s.status, 7);
  EXPECT_EQ(s.signal, SIGABRT);
  EXPECT_TRUE(s.core);
}

TEST(RssBytes, FileAnonShmemNotSwap) {
  fp_proc p = proc(1, 1);
  p.rss_pages[0] = 10;    // MM_FILEPAGES
  p.rss_pages[1] = 20;    // MM_ANONPAGES
  p.rss_pages[2] = 1000;  // MM_SWAPENTS: not resident
  p.rss_pages[3] = 5;     // MM_SHMEMPAGES
  EXPECT_EQ(rss_bytes_of(p, kPage), 35 * kPage);
  EXPECT_EQ(rss_bytes_of(p, 65536), 35u * 65536);
}

TEST(RssBytes, NegativeCountersAreZero) {
  fp_proc p = proc(1, 1);
  p.rss_pages[0] = -3;  // per-CPU batching can leave a counter briefly negative
  p.rss_pages[1] = 20;
  p.rss_pages[3] = -1;
  EXPECT_EQ(rss_bytes_of(p, kPage), 20 * kPage);
  p.rss_pages[1] = -20;
  EXPECT_EQ(rss_bytes_of(p, kPage), 0u);
}

// ---- compute_deltas: identity and lifecycle ----

TEST(ComputeDeltas, EmptyInputs) {
  EXPECT_TRUE(compute_deltas(Sample{}, Sample{}, {}, kPage).empty());
}

TEST(ComputeDeltas, ContinuingProcessGetsDifferences) {
  fp_proc b = proc(100, 5);
  fill_counters(b, 1);
  fp_proc a = proc(100, 5, "renamed");
  fill_counters(a, 3);
  a.ppid = 7;
  a.flags = FP_PROC_EXEC_SEEN;
  a.cgroup_id = 4242;
  a.last_fatal_sig = SIGSEGV;
  a.rss_pages[1] = 100;
  b.rss_pages[1] = 999;  // a gauge: the newest value, not a difference

  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  const ProcDelta& d = ds[0];
  EXPECT_EQ(d.key, (ProcKey{100, 5}));
  EXPECT_FALSE(d.started);
  EXPECT_FALSE(d.exited);
  expect_counters(d, 2);
  EXPECT_EQ(d.comm, "renamed");
  EXPECT_EQ(d.ppid, 7u);
  EXPECT_EQ(d.flags, FP_PROC_EXEC_SEEN);
  EXPECT_EQ(d.cgroup_id, 4242u);
  EXPECT_EQ(d.last_fatal_sig, static_cast<uint32_t>(SIGSEGV));
  EXPECT_EQ(d.rss_bytes, 100 * kPage);
}

TEST(ComputeDeltas, NewProcessGetsWholeCounters) {
  fp_proc old = proc(1, 1);
  fp_proc born = proc(200, 1500);
  fill_counters(born, 4);
  auto ds = compute_deltas(sample(1000, {old}), sample(2000, {old, born}), {}, kPage);
  ASSERT_EQ(ds.size(), 2u);
  const ProcDelta* d = find(ds, 200, 1500);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->started);
  EXPECT_FALSE(d->exited);
  expect_counters(*d, 4);
  EXPECT_FALSE(find(ds, 1, 1)->started);
}

TEST(ComputeDeltas, ReusedPidResetsInsteadOfInheriting) {
  // pid 300 exited (its exit event was lost) and a new process got the same pid.
  fp_proc old = proc(300, 10, "old");
  fill_counters(old, 50);
  fp_proc reused = proc(300, 1200, "new");
  fill_counters(reused, 2);
  auto ds = compute_deltas(sample(1000, {old}), sample(2000, {reused}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].key, (ProcKey{300, 1200}));
  EXPECT_TRUE(ds[0].started);
  EXPECT_EQ(ds[0].comm, "new");
  expect_counters(ds[0], 2);  // not clamped to 0 against the old process's larger counters
}

TEST(ComputeDeltas, GoneWithoutExitEventIsDropped) {
  fp_proc gone = proc(400, 1);
  fill_counters(gone, 1);
  auto ds = compute_deltas(sample(1000, {gone}), sample(2000, {}), {}, kPage);
  EXPECT_TRUE(ds.empty());
}

TEST(ComputeDeltas, ExitedProcessFromBeforeGetsDifferenceAndStatus) {
  fp_proc b = proc(500, 3);
  fill_counters(b, 1);
  fp_proc final = proc(500, 3, "crasher");
  fill_counters(final, 6);
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {}), {exit_of(final, 1500, 0x80 | SIGSEGV)}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  const ProcDelta& d = ds[0];
  EXPECT_TRUE(d.exited);
  EXPECT_FALSE(d.started);
  EXPECT_EQ(d.exit_signal, SIGSEGV);
  EXPECT_TRUE(d.core_dumped);
  EXPECT_EQ(d.exit_status, 0);
  EXPECT_EQ(d.comm, "crasher");
  expect_counters(d, 5);
}

TEST(ComputeDeltas, LivedAndDiedInsideTheInterval) {
  fp_proc final = proc(600, 1100, "shortlived");
  fill_counters(final, 3);
  final.rss_pages[1] = 7;
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {}), {exit_of(final, 1400, 2 << 8)}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  const ProcDelta& d = ds[0];
  EXPECT_TRUE(d.started);
  EXPECT_TRUE(d.exited);
  EXPECT_EQ(d.exit_status, 2);
  EXPECT_EQ(d.exit_signal, 0);
  EXPECT_FALSE(d.core_dumped);
  expect_counters(d, 3);
  EXPECT_EQ(d.rss_bytes, 7 * kPage);
}

TEST(ComputeDeltas, ExitWinsOverLiveCopyOfTheSameProcess) {
  fp_proc b = proc(700, 1);
  fill_counters(b, 1);
  fp_proc live = proc(700, 1);
  fill_counters(live, 2);  // read while still running
  fp_proc final = proc(700, 1);
  fill_counters(final, 3);  // counters at exit, newer
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {live}), {exit_of(final, 1900, SIGKILL)}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_TRUE(ds[0].exited);
  EXPECT_EQ(ds[0].exit_signal, SIGKILL);
  expect_counters(ds[0], 2);  // final - before
}

TEST(ComputeDeltas, ExitOfOldProcessAndLiveReusedPidAreBothReported) {
  fp_proc old = proc(800, 1, "old");
  fill_counters(old, 1);
  fp_proc old_final = proc(800, 1, "old");
  fill_counters(old_final, 2);
  fp_proc reused = proc(800, 1500, "new");
  fill_counters(reused, 5);
  auto ds = compute_deltas(sample(1000, {old}), sample(2000, {reused}), {exit_of(old_final, 1400, 0)}, kPage);
  ASSERT_EQ(ds.size(), 2u);
  const ProcDelta* o = find(ds, 800, 1);
  const ProcDelta* n = find(ds, 800, 1500);
  ASSERT_NE(o, nullptr);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(o->exited);
  EXPECT_FALSE(o->started);
  expect_counters(*o, 1);
  EXPECT_FALSE(n->exited);
  EXPECT_TRUE(n->started);
  expect_counters(*n, 5);
}

TEST(ComputeDeltas, DuplicateExitEventsReportedOnceLatestWins) {
  fp_proc f1 = proc(900, 1);
  fill_counters(f1, 1);
  fp_proc f2 = proc(900, 1);
  fill_counters(f2, 2);
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {}),
                           {exit_of(f2, 1600, 1 << 8), exit_of(f1, 1500, 0)}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  expect_counters(ds[0], 2);
  EXPECT_EQ(ds[0].exit_status, 1);
}

TEST(ComputeDeltas, CounterThatWentBackwardsIsZero) {
  fp_proc b = proc(1000, 1);
  fill_counters(b, 5);
  fp_proc a = proc(1000, 1);
  fill_counters(a, 2);
  a.io_read_bytes = 100;  // one counter still moving forward
  b.io_read_bytes = 40;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].cpu_ns, 0u);
  EXPECT_EQ(ds[0].forks, 0u);
  EXPECT_EQ(ds[0].threads, 0u);
  EXPECT_EQ(ds[0].fatal_signals, 0u);
  EXPECT_EQ(ds[0].io_read_bytes, 60u);
}

TEST(ComputeDeltas, SortedByCpuDescendingThenTgid) {
  fp_proc p1 = proc(30, 1), p2 = proc(10, 1), p3 = proc(20, 1), p4 = proc(5, 1);
  p1.cpu_ns = 100;
  p2.cpu_ns = 500;
  p3.cpu_ns = 100;
  p4.cpu_ns = 0;
  fp_proc e = proc(40, 1);
  e.cpu_ns = 300;
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {p1, p2, p3, p4}), {exit_of(e, 1500, 0)}, kPage);
  ASSERT_EQ(ds.size(), 5u);
  std::vector<uint32_t> order;
  for (const ProcDelta& d : ds) order.push_back(d.key.tgid);
  EXPECT_EQ(order, (std::vector<uint32_t>{10, 40, 20, 30, 5}));
}

TEST(ComputeDeltas, CommFillingAllSixteenBytes) {
  fp_proc p = proc(1, 1, "abcdefghijklmnopqrstuvwxyz");  // truncated to 16, no NUL
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {p}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].comm, "abcdefghijklmnop");
  fp_proc q = proc(2, 1, "");
  ds = compute_deltas(sample(1000, {}), sample(2000, {q}), {}, kPage);
  EXPECT_EQ(ds[0].comm, "");
}

// ---- maxima and percentiles ----

TEST(ComputeDeltas, MaxExactWhenCumulativeMaxRose) {
  fp_proc b = proc(1, 1);
  b.runq_wait_max_ns = 5 * kUs;
  b.runq_hist[2] = 3;  // [4, 8) us
  fp_proc a = b;
  a.runq_wait_max_ns = 9 * kUs;
  a.runq_hist[2] = 4;
  a.runq_hist[3] = 1;  // the new 9 us wait: [8, 16) us
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 9 * kUs);
  EXPECT_EQ(ds[0].runq_hist[2], 1u);
  EXPECT_EQ(ds[0].runq_hist[3], 1u);
  // p99 of {[4,8), [8,16)}: rank 2 is the top of bucket 3 (16 us), clamped to the exact max.
  EXPECT_EQ(ds[0].runq_wait_p99_ns, 9 * kUs);
}

TEST(ComputeDeltas, MaxBoundedByHistogramWhenCumulativeMaxDidNotRise) {
  fp_proc b = proc(1, 1);
  b.runq_wait_max_ns = 100 * kUs;  // an old, large wait
  b.runq_hist[6] = 1;
  b.io_lat_max_ns = 5 * kUs;
  b.io_lat_hist[2] = 1;
  fp_proc a = b;
  a.runq_hist[3] += 4;  // four waits in [8, 16) us this interval
  a.io_lat_hist[1] += 2;  // two IOs in [2, 4) us
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 16 * kUs);  // top of the highest bucket, not the old 100 us
  EXPECT_EQ(ds[0].runq_wait_p99_ns, 16 * kUs);  // rank ceil(0.99 * 4) = 4 of 4
  EXPECT_EQ(ds[0].io_lat_max_ns, 4 * kUs);
  EXPECT_EQ(ds[0].io_lat_p99_ns, 4 * kUs);
}

TEST(ComputeDeltas, MaxBoundedByCumulativeMaxBelowBucketTop) {
  fp_proc b = proc(1, 1);
  b.io_lat_max_ns = 10 * kUs;
  b.io_lat_hist[3] = 1;
  fp_proc a = b;
  a.io_lat_hist[3] += 3;  // more IOs in [8, 16) us, none above the 10 us max
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].io_lat_max_ns, 10 * kUs);
  EXPECT_EQ(ds[0].io_lat_p99_ns, 10 * kUs);
}

TEST(ComputeDeltas, NoActivityMeansZeroMaxAndP99) {
  fp_proc b = proc(1, 1);
  b.runq_wait_max_ns = 70 * kUs;
  b.runq_hist[5] = 10;
  b.io_lat_max_ns = 3 * kUs;
  b.io_lat_hist[1] = 1;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {b}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 0u);
  EXPECT_EQ(ds[0].runq_wait_p99_ns, 0u);
  EXPECT_EQ(ds[0].io_lat_max_ns, 0u);
  EXPECT_EQ(ds[0].io_lat_p99_ns, 0u);
}

TEST(ComputeDeltas, P99NeverAboveMaxEvenWhenMaxIsZero) {
  // Zero-length waits land in bucket 0 and leave the cumulative max at 0.
  fp_proc b = proc(1, 1);
  fp_proc a = b;
  a.runq_hist[0] = 5;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_hist[0], 5u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 0u);
  EXPECT_EQ(ds[0].runq_wait_p99_ns, 0u);
}

TEST(ComputeDeltas, NewProcessMaxIsItsCumulativeMax) {
  fp_proc a = proc(1, 1500);
  a.runq_wait_max_ns = 42 * kUs;
  a.runq_hist[5] = 2;  // [32, 64) us
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 42 * kUs);
  EXPECT_EQ(ds[0].runq_wait_p99_ns, 42 * kUs);
}

TEST(ComputeDeltas, HistogramCountersWrapAround) {
  fp_proc b = proc(1, 1);
  b.runq_wait_max_ns = 50 * kUs;
  b.runq_hist[4] = 0xFFFFFFFEu;
  fp_proc a = b;
  a.runq_hist[4] = 3;  // wrapped: 5 new samples
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].runq_hist[4], 5u);
  EXPECT_EQ(ds[0].runq_wait_max_ns, 32 * kUs);  // top of [16, 32) us
}

// ---- D-state ----

TEST(ComputeDeltas, DStateOngoingAcrossTheWholeInterval) {
  fp_proc b = proc(1, 1);
  b.dstate_ns = 50;
  b.dstate_max_ns = 30;
  b.dstate_since_ns = 800;
  fp_proc a = b;  // still in D since 800
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 1000u);          // the whole interval
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 1200u);  // since 800, measured at 2000
  EXPECT_EQ(ds[0].dstate_max_ns, 1200u);
}

TEST(ComputeDeltas, DStateFinishedInsideTheInterval) {
  fp_proc b = proc(1, 1);
  b.dstate_ns = 50;
  b.dstate_max_ns = 30;
  b.dstate_since_ns = 800;
  fp_proc a = b;
  a.dstate_since_ns = 0;  // ended at 1500 after 700 ns
  a.dstate_ns = 50 + 700;
  a.dstate_max_ns = 700;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 500u);  // 1000..1500; the 200 before the interval was counted before
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 0u);
  EXPECT_EQ(ds[0].dstate_max_ns, 700u);  // the cumulative max rose: exact
}

TEST(ComputeDeltas, DStateStartedInsideTheInterval) {
  fp_proc b = proc(1, 1);
  b.dstate_ns = 50;
  b.dstate_max_ns = 30;
  fp_proc a = b;
  a.dstate_since_ns = 1700;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 300u);
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 300u);
  EXPECT_EQ(ds[0].dstate_max_ns, 300u);
}

TEST(ComputeDeltas, DStateShortSleepsBoundedByCumulativeMax) {
  fp_proc b = proc(1, 1);
  b.dstate_ns = 1000;
  b.dstate_max_ns = 400;
  fp_proc a = b;
  a.dstate_ns = 1000 + 90;  // several short sleeps, total 90, none above the old 400 max
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 90u);
  EXPECT_EQ(ds[0].dstate_max_ns, 90u);  // min(cumulative max, interval total)

  a.dstate_ns = 1000 + 900;  // total above the old max: the max is the bound
  ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  EXPECT_EQ(ds[0].dstate_max_ns, 400u);
}

TEST(ComputeDeltas, NoDStateMeansZero) {
  fp_proc b = proc(1, 1);
  b.dstate_ns = 1000;
  b.dstate_max_ns = 400;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {b}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 0u);
  EXPECT_EQ(ds[0].dstate_max_ns, 0u);
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 0u);
}

TEST(ComputeDeltas, DStateSinceAfterSampleTimeCountsNothingYet) {
  // The read began at ts 2000; a thread entered D at 2100 before its slot was copied.
  fp_proc b = proc(1, 1);
  fp_proc a = b;
  a.dstate_since_ns = 2100;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 0u);
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 0u);
  EXPECT_EQ(ds[0].dstate_max_ns, 0u);
}

TEST(ComputeDeltas, DStateOfExitedProcessUsesExitTime) {
  fp_proc b = proc(1, 1);
  b.dstate_since_ns = 900;  // in D at the first sample
  fp_proc final = b;
  final.dstate_since_ns = 0;
  final.dstate_ns = 600;  // woke at 1500, then exited
  final.dstate_max_ns = 600;
  auto ds = compute_deltas(sample(1000, {b}), sample(2000, {}), {exit_of(final, 1600, SIGKILL)}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].dstate_ns, 500u);  // 600 total minus the 100 before the interval
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 0u);
  EXPECT_EQ(ds[0].dstate_max_ns, 600u);
}

TEST(ComputeDeltas, NewProcessInDState) {
  fp_proc a = proc(1, 1200);
  a.dstate_ns = 20;
  a.dstate_max_ns = 20;
  a.dstate_since_ns = 1500;
  auto ds = compute_deltas(sample(1000, {}), sample(2000, {a}), {}, kPage);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_TRUE(ds[0].started);
  EXPECT_EQ(ds[0].dstate_ns, 520u);
  EXPECT_EQ(ds[0].dstate_ongoing_ns, 500u);
  EXPECT_EQ(ds[0].dstate_max_ns, 500u);
}

}  // namespace
}  // namespace fp
