// The process table: per-process history of counters, so detectors can ask
// "what did this process do over the last 1 s / 10 s / 60 s" at every tick.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "detect/counter_ring.h"
#include "faultprobe/abi.h"
#include "probe/hist.h"
#include "probe/sample.h"

namespace fp {

// The counters detectors use, taken from an fp_proc at one instant.
// Cumulative (monotonic) unless marked gauge.
struct Metrics {
  uint64_t cpu_ns = 0;
  uint64_t runq_wait_ns = 0, runq_waits = 0;
  uint64_t nvcsw = 0, nivcsw = 0;
  uint64_t dstate_ns = 0;            // finished D-states plus the ongoing one up to ts
  uint64_t dstate_ongoing_ns = 0;    // gauge: current D-state length at ts (0: none)
  uint64_t forks = 0, execs = 0;
  // io_*_bytes: what the process caused (task IO accounting, /proc/PID/io's
  // read_bytes/write_bytes); io_submit_bytes, io_reqs, io_lat_ns, io_errors:
  // the block requests it submitted (a buffered writer's go to the flusher).
  uint64_t io_read_bytes = 0, io_write_bytes = 0, io_reqs = 0, io_lat_ns = 0, io_errors = 0;
  uint64_t page_faults = 0, reclaim_ns = 0, reclaims = 0;
  uint64_t rss_bytes = 0;            // gauge
  uint64_t fatal_signals = 0, oom_victim = 0;
  uint64_t io_submit_bytes = 0;      // read + write bytes of the requests it submitted
  uint64_t dirty_throttle_ns = 0;    // paused in dirty-page balancing
  // Network, charged to the socket's owner (bpf/net.bpf.c).
  uint64_t net_connects = 0, net_connect_failures = 0, net_retransmits = 0, net_segs_out = 0;
  uint64_t net_resets_sent = 0, net_resets_received = 0, net_rcvq_overflows = 0;
  uint64_t net_drops = 0;  // packets dropped with a reason on its sockets (skb:kfree_skb)
};

// ts_ns: the sample's CLOCK_MONOTONIC time (for dstate_ongoing_ns).
Metrics metrics_of(const fp_proc& p, uint64_t ts_ns, uint64_t page_size);

// What a process did over a span ending now.
struct WindowDelta {
  uint64_t span_ns = 0;   // the span actually covered (shorter than asked if the process is younger)
  bool full = false;      // covered the whole span asked for
  Metrics delta;          // end - start for cumulative fields; gauges hold the end value
  uint64_t rss_start = 0, rss_end = 0;
  // Fraction of 1 s steps inside the span in which RSS grew (for leak detection); 0 if < 2 steps.
  double rss_growing_fraction = 0;
  Hist runq_hist{}, io_lat_hist{};  // histogram deltas over the span (1 s resolution, reaching back ~11 s)
  // Until when this window (of the same span) stays as it is if the process
  // does not change: the time its oldest point after the window's start
  // leaves the window, or a young process's window becomes full. Until then
  // only span_ns of a young (not full) window grows, and an ongoing D-state's
  // gauge. UINT64_MAX: never.
  uint64_t stable_until_ns = UINT64_MAX;
};

// A hash of a process key for the table's flat lookups.
struct ProcKeyHash {
  size_t operator()(const ProcKey& k) const noexcept {
    uint64_t h = (k.start_ns ^ (uint64_t{k.tgid} << 32 | k.tgid)) * 0x9e3779b97f4a7c15ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

// What detectors and the faces read of the probe's slot beyond Metrics.
// ProcState kept the whole slot (an fp_proc, 544 bytes: 5.4 MB at 10,000
// processes, a copy of the probe's mirror) for these few fields.
struct SlotFields {
  uint64_t dstate_since_ns = 0;  // non-zero: some thread has been in D since then
  int32_t dstate_active = 0;     // threads in D right now
  uint32_t io_dev = 0;           // device of the last completed IO (kernel dev_t)
  uint64_t runq_wait_max_ns = 0, io_lat_max_ns = 0;
  // The slot's run-queue wait and IO latency histograms (FP_HIST_SLOTS
  // buckets each), packed: a bit per non-zero bucket, then their values
  // (LEB128). Most processes have a few non-zero buckets, which fit in the
  // string's inline bytes: 32 bytes instead of 256.
  std::string hists;
  Hist runq_hist() const;
  Hist io_lat_hist() const;
};
SlotFields slot_fields_of(const fp_proc& p);
// A 64-bit digest of a whole slot: ProcTable records a slot only when it
// differs from the last one it recorded (it compared the kept copy).
uint64_t slot_digest(const fp_proc& p);

struct ProcState {
  ProcKey key;
  uint32_t ppid = 0;
  uint32_t flags = 0;        // FP_PROC_*
  uint64_t cgroup_id = 0;
  std::string comm;
  uint64_t first_seen_ns = 0;   // monotonic time the table first saw it
  uint64_t last_update_ns = 0;  // last time its counters changed
  bool exited = false;
  uint32_t exit_code = 0;       // raw, valid when exited
  Metrics now;                  // latest
  SlotFields slot;              // latest slot's histograms, D-state and IO device
  uint64_t slot_digest = 0;     // slot_digest() of the latest slot
};

// The metrics of `s` as they stand at `t` (>= its last update) if nothing
// changed since: an ongoing D-state keeps growing. What metrics_of() of its
// latest slot at `t` gives.
Metrics metrics_at(const ProcState& s, uint64_t t);

// Keeps, per live process, a change-driven history: an entry is appended
// only when the process's counters changed (idle processes cost nothing),
// at tick resolution for the last ~2 s and at 1 s resolution for the last
// 65 s; histogram snapshots at 1 s resolution for the last 11 s.
// Budget: at most ~6 KB per active process.
class ProcessTable {
 public:
  explicit ProcessTable(uint64_t page_size = 4096) : page_size_(page_size) {}

  // A slot the probe reported as changed at `now_ns` (monotonic).
  // A different start_ns for a known tgid means pid reuse: the old process
  // is dropped (as if it exited unseen) and the new one starts fresh.
  void update(uint64_t now_ns, const fp_proc& p);
  // An exit event: final counters, then the process is marked exited and
  // removed at the next end_tick() after detectors saw it once.
  void exited(uint64_t now_ns, const ExitRecord& e);
  // A process whose slot went (freed, or taken by another) without an exit
  // event: exited as it was at its last update, exit code 0.
  void lost(const ProcKey& k);
  // Closes a tick: removes processes that exited before this tick.
  void end_tick(uint64_t now_ns);

  // Window ending at `now_ns` over `span_ns`.
  WindowDelta window(const ProcState& s, uint64_t now_ns, uint64_t span_ns) const;
  // The lowest and highest RSS of the points in that window (its base, the
  // changes inside it, the latest): walks the window, not for every tick.
  std::pair<uint64_t, uint64_t> rss_range(const ProcState& s, uint64_t now_ns, uint64_t span_ns) const;

  const ProcState* find(const ProcKey& k) const;
  const ProcState* find_pid(uint32_t tgid) const;
  // All known processes (live and just-exited), ordered by key.
  template <typename F>
  void for_each(F&& f) const {
    for (const Entry* e : ordered()) f(e->state);
  }
  size_t size() const { return procs_.size(); }

  // ---- incremental evaluation: work proportional to what changed ----------
  // Visits the processes whose window of `span_ns` at `now_ns` may differ
  // from the one at the previous tick: those recorded since the last
  // end_tick() (changed, new, exited), and those whose schedule_window() time
  // for this span has come. `all`: every process instead (a detector's first
  // tick). Calls f(state) once per process, in no particular order.
  template <typename F>
  void for_each_dirty(uint64_t span_ns, uint64_t now_ns, bool all, F&& f) const {
    if (all) return for_each(f);
    for (const ProcKey& k : dirty_keys(span_ns, now_ns)) {
      if (const ProcState* s = find(k)) f(*s);
    }
  }
  // Asks for `k` to be visited by for_each_dirty(span_ns) at the first tick at
  // or after `at_ns` (WindowDelta::stable_until_ns), even if it does not change.
  void schedule_window(uint64_t span_ns, const ProcKey& k, uint64_t at_ns) const;
  // The processes the last end_tick() removed (callers drop what they keep about them).
  const std::vector<ProcKey>& removed() const { return removed_; }
  // How many windows were computed so far (tests: an idle process costs none).
  uint64_t windows_computed() const { return windows_computed_; }
  // The processes with a non-zero io_errors, oom_victim, or an ongoing D-state
  // (the event detectors' fallbacks look at these only).
  const std::set<ProcKey>& with_io_errors() const { return io_errors_; }
  const std::set<ProcKey>& oom_victims() const { return oom_victims_; }
  const std::set<ProcKey>& in_dstate() const { return in_dstate_; }
  // Heap and inline bytes the table holds (for status; the budget is ~6 KB per busy process).
  size_t memory_bytes() const;
  // The parent chain of a process (ppid links), nearest first, bounded.
  std::vector<const ProcState*> ancestors(const ProcState& s, size_t max_depth = 32) const;

 private:
  // The rings and their cursors: detect/counter_ring.h.
  static constexpr size_t kMetricValues = sizeof(Metrics) / sizeof(uint64_t);
  using MetricCursor = RingCursor<uint64_t, kMetricValues>;
  using HistCursor = RingCursor<uint32_t, FP_HIST_SLOTS>;  // the probe's buckets are 32 bits
  struct SpanCursors {
    MetricCursor coarse;
    std::unique_ptr<MetricCursor> fine;  // only for spans the fine ring covers
    HistCursor runq, io;
    uint64_t used_ns = 0;     // the last window computed with them
    uint64_t memo_epoch = 0;  // memo_[memo_index] is this window at this tick while memo_epoch_ is this
    uint32_t memo_index = 0;
  };
  struct CursorKey {
    ProcKey key;
    uint64_t span_ns;
    bool operator==(const CursorKey&) const = default;
  };
  struct CursorKeyHash {
    size_t operator()(const CursorKey& k) const noexcept {
      return ProcKeyHash{}(k.key) ^ static_cast<size_t>(k.span_ns * 0xff51afd7ed558ccdull);
    }
  };
  struct Entry {
    ProcState state;
    StepRing fine;      // Metrics at tick resolution, last ~2 s
    StepRing coarse;    // Metrics at 1 s resolution (the last change of each second), last 65 s
    StepRing runq;      // run-queue histogram, 1 s resolution, last 11 s
    StepRing io;        // IO latency histogram, 1 s resolution, last 11 s
  };
  // Takes a copy of a process's counters observed at `ts`; creates its entry
  // and settles pid ownership. Returns the entry.
  Entry* record(uint64_t ts, const fp_proc& p);
  WindowDelta window_of(const Entry& e, SpanCursors& cur, uint64_t now_ns, uint64_t span_ns) const;
  const Entry* entry_of(const ProcState& s) const;
  // Every entry ordered by key (rebuilt after the membership changed).
  const std::vector<const Entry*>& ordered() const;

  // The keys to visit for one span at one tick (changed_ plus the due ones).
  const std::vector<ProcKey>& dirty_keys(uint64_t span_ns, uint64_t now_ns) const;
  struct SpanDue {
    // Min-heap of (time, key); `pending` keeps the earliest time per key, so
    // a busy process (due again and again) stays one heap entry.
    std::vector<std::pair<uint64_t, ProcKey>> heap;
    std::unordered_map<ProcKey, uint64_t, ProcKeyHash> pending;
    uint64_t built_for_ns = UINT64_MAX;  // the tick `dirty` was built for
    std::vector<ProcKey> dirty;
  };

  uint64_t page_size_;
  // Hashed: the hot paths look processes up by key at every tick.
  std::unordered_map<ProcKey, Entry, ProcKeyHash> procs_;
  std::unordered_map<uint32_t, ProcKey> by_pid_;
  mutable std::vector<const Entry*> ordered_;
  mutable bool ordered_stale_ = true;
  std::vector<ProcKey> changed_;   // recorded since the last end_tick (may repeat)
  std::vector<ProcKey> exited_;    // marked exited since the last end_tick
  std::vector<ProcKey> removed_;   // removed by the last end_tick
  std::set<ProcKey> io_errors_, oom_victims_, in_dstate_;
  mutable std::map<uint64_t, SpanDue> due_;  // by span
  mutable uint64_t windows_computed_ = 0;
  // Cursors of the processes whose windows are computed (dropped a while
  // after the last use, so an idle process costs none).
  mutable std::unordered_map<CursorKey, SpanCursors, CursorKeyHash> cursors_;
  std::vector<ProcKey> prev_changed_;  // recorded in the previous tick, sorted
  // Windows of processes without cursors computed at this tick: index in memo_.
  mutable std::unordered_map<CursorKey, uint32_t, CursorKeyHash> temp_memo_;  // emptied with memo_
  mutable uint64_t cursors_swept_ns_ = 0;
  // Windows computed at one tick, by (process, span) (SpanCursors::memo_*):
  // the detectors of one span share them. Dropped when the tick's time moves
  // or a process is recorded (all records of a tick come before its windows).
  mutable uint64_t memo_now_ = 0;
  mutable uint64_t memo_epoch_ = 1;  // bumped whenever memo_ is emptied
  mutable std::vector<WindowDelta> memo_;
  size_t heap_bytes_ = 0;  // the entries' ring buffers and long names
};

}  // namespace fp
