#include "detect/process_table.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <iterator>
#include <set>

#include "probe/delta.h"

namespace fp {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;
// How far back each ring reaches (it also keeps the newest point older than
// that, the base of a window of exactly that span).
constexpr uint64_t kFineKeepNs = 2 * kSec;
constexpr uint64_t kCoarseKeepNs = 65 * kSec;
constexpr uint64_t kHistKeepNs = 11 * kSec;
// Hard caps, for a caller that updates more often than the sampling interval.
constexpr uint32_t kFineMax = 32;
constexpr uint32_t kCoarseMax = 72;
constexpr uint32_t kHistMax = 13;

uint64_t sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
// 1 s buckets, open on the left: bucket k is (k s, (k+1) s], so the state at
// a bucket's lower bound is the last change of an earlier bucket.
uint64_t bucket(uint64_t ts) { return ts == 0 ? 0 : (ts - 1) / kSec; }

// ---- the values a ring stores, as a plain vector ---------------------------

using Vec = RingValues;

constexpr uint64_t Metrics::*kMetricFields[] = {
    &Metrics::cpu_ns,         &Metrics::runq_wait_ns,   &Metrics::runq_waits,  &Metrics::nvcsw,
    &Metrics::nivcsw,         &Metrics::dstate_ns,      &Metrics::dstate_ongoing_ns,
    &Metrics::forks,          &Metrics::execs,          &Metrics::io_read_bytes,
    &Metrics::io_write_bytes, &Metrics::io_reqs,        &Metrics::io_lat_ns,   &Metrics::io_errors,
    &Metrics::page_faults,    &Metrics::reclaim_ns,     &Metrics::reclaims,    &Metrics::rss_bytes,
    &Metrics::fatal_signals,  &Metrics::oom_victim,     &Metrics::io_submit_bytes, &Metrics::dirty_throttle_ns,
    &Metrics::net_connects,   &Metrics::net_connect_failures, &Metrics::net_retransmits, &Metrics::net_segs_out,
    &Metrics::net_resets_sent, &Metrics::net_resets_received, &Metrics::net_rcvq_overflows,
    &Metrics::net_drops};
constexpr size_t kNumMetrics = std::size(kMetricFields);
static_assert(sizeof(Metrics) == kNumMetrics * sizeof(uint64_t), "a Metrics field is missing from kMetricFields");
static_assert(kNumMetrics <= kRingMaxValues);
// RSS: the value the metric rings count the rises of (WindowDelta::rss_growing_fraction).
constexpr size_t kRssIndex = kRiseIndex;
static_assert(kMetricFields[kRssIndex] == &Metrics::rss_bytes);

Vec vec_of(const Metrics& m) {
  Vec v{};
  for (size_t i = 0; i < kNumMetrics; ++i) v[i] = m.*kMetricFields[i];
  return v;
}

Metrics metrics_of_vec(const Vec& v) {
  Metrics m;
  for (size_t i = 0; i < kNumMetrics; ++i) m.*kMetricFields[i] = v[i];
  return m;
}

Vec vec_of(const __u32 (&h)[FP_HIST_SLOTS]) {
  Vec v{};
  for (size_t i = 0; i < FP_HIST_SLOTS; ++i) v[i] = h[i];
  return v;
}

template <typename T, size_t N>
Vec vec_of(const std::array<T, N>& a) {
  Vec v{};
  for (size_t i = 0; i < N; ++i) v[i] = a[i];
  return v;
}

Hist hist_of(const Vec& v) {
  Hist h{};
  for (size_t i = 0; i < FP_HIST_SLOTS; ++i) h[i] = v[i];
  return h;
}

// The metrics a point recorded at `ts` stands for at a later time `t`, when
// nothing changed in between: only an ongoing D-state keeps growing.
Metrics advance(const Metrics& m, uint64_t ts, uint64_t t) {
  Metrics out = m;
  if (m.dstate_ongoing_ns != 0 && t > ts) {
    out.dstate_ns += t - ts;
    out.dstate_ongoing_ns += t - ts;
  }
  return out;
}

Metrics diff(const Metrics& end, const Metrics& start) {
  Metrics d;
  for (uint64_t Metrics::*f : kMetricFields) d.*f = sub(end.*f, start.*f);
  d.dstate_ongoing_ns = end.dstate_ongoing_ns;  // gauges
  d.rss_bytes = end.rss_bytes;
  return d;
}

std::string comm_of(const fp_proc& p) { return std::string(p.comm, strnlen(p.comm, FP_COMM_LEN)); }

size_t ring_bytes(const std::vector<uint8_t>& b) { return b.capacity(); }

// What an entry holds on the heap: its rings' buffers and a name too long to stay inline.
template <typename Entry>
size_t heap_bytes_of(const Entry& e) {
  return (e.state.comm.capacity() > 15 ? e.state.comm.capacity() + 1 : 0) +
         (e.state.slot.hists.capacity() > 15 ? e.state.slot.hists.capacity() + 1 : 0) + ring_bytes(e.fine.bytes) +
         ring_bytes(e.coarse.bytes) + ring_bytes(e.runq.bytes) + ring_bytes(e.io.bytes);
}

}  // namespace

Metrics metrics_of(const fp_proc& p, uint64_t ts_ns, uint64_t page_size) {
  Metrics m;
  uint64_t ongoing = p.dstate_since_ns != 0 && ts_ns > p.dstate_since_ns ? ts_ns - p.dstate_since_ns : 0;
  m.cpu_ns = p.cpu_ns;
  m.runq_wait_ns = p.runq_wait_ns;
  m.runq_waits = p.runq_waits;
  m.nvcsw = p.nvcsw;
  m.nivcsw = p.nivcsw;
  m.dstate_ns = p.dstate_ns + ongoing;
  m.dstate_ongoing_ns = ongoing;
  m.forks = p.forks;
  m.execs = p.execs;
  m.io_read_bytes = p.io_read_bytes;
  m.io_write_bytes = p.io_write_bytes;
  m.io_reqs = p.io_read_reqs + p.io_write_reqs;
  m.io_lat_ns = p.io_lat_ns;
  m.io_errors = p.io_errors;
  m.page_faults = p.page_faults;
  m.reclaim_ns = p.reclaim_ns;
  m.reclaims = p.reclaims;
  m.rss_bytes = rss_bytes_of(p, page_size);
  m.fatal_signals = p.fatal_signals;
  m.oom_victim = p.oom_victim;
  m.io_submit_bytes = p.io_submit_read_bytes + p.io_submit_write_bytes;
  m.dirty_throttle_ns = p.dirty_throttle_ns;
  m.net_connects = p.net_connects;
  m.net_connect_failures = p.net_connect_failures;
  m.net_retransmits = p.net_retransmits;
  m.net_segs_out = p.net_segs_out;
  m.net_resets_sent = p.net_resets_sent;
  m.net_resets_received = p.net_resets_received;
  m.net_rcvq_overflows = p.net_rcvq_overflows;
  m.net_drops = p.net_drops;
  return m;
}

namespace {

// SlotFields::hists: the mask of non-zero buckets (runq's, then io's), then
// each non-zero value as LEB128, in bucket order.
static_assert(2 * FP_HIST_SLOTS <= 64, "the packed histograms' mask is one uint64_t");

std::string pack_hists(const __u32 (&runq)[FP_HIST_SLOTS], const __u32 (&io)[FP_HIST_SLOTS]) {
  uint64_t mask = 0;
  char buf[sizeof mask + 2 * FP_HIST_SLOTS * 5];
  size_t n = sizeof mask;
  auto put = [&](const __u32 (&h)[FP_HIST_SLOTS], unsigned base) {
    for (unsigned i = 0; i < FP_HIST_SLOTS; ++i) {
      uint32_t v = h[i];
      if (v == 0) continue;
      mask |= uint64_t{1} << (base + i);
      for (; v >= 0x80; v >>= 7) buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      buf[n++] = static_cast<char>(v);
    }
  };
  put(runq, 0);
  put(io, FP_HIST_SLOTS);
  if (mask == 0) return {};
  std::memcpy(buf, &mask, sizeof mask);
  return std::string(buf, n);
}

// Both histograms in one pass over the set bits of the mask.
void unpack_hists(const std::string& packed, Hist* runq, Hist* io) {
  if (runq != nullptr) *runq = Hist{};
  if (io != nullptr) *io = Hist{};
  if (packed.size() < sizeof(uint64_t)) return;
  uint64_t mask = 0;
  std::memcpy(&mask, packed.data(), sizeof mask);
  const auto* in = reinterpret_cast<const unsigned char*>(packed.data()) + sizeof mask;
  for (; mask != 0; mask &= mask - 1) {
    const unsigned b = static_cast<unsigned>(std::countr_zero(mask));
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
      const unsigned char c = *in++;
      v |= uint64_t{c & 0x7fu} << shift;
      if ((c & 0x80) == 0) break;
    }
    Hist* h = b < FP_HIST_SLOTS ? runq : io;
    if (h != nullptr) (*h)[b % FP_HIST_SLOTS] = v;
  }
}

}  // namespace

Hist SlotFields::runq_hist() const {
  Hist h;
  unpack_hists(hists, &h, nullptr);
  return h;
}

Hist SlotFields::io_lat_hist() const {
  Hist h;
  unpack_hists(hists, nullptr, &h);
  return h;
}

SlotFields slot_fields_of(const fp_proc& p) {
  SlotFields f;
  f.dstate_since_ns = p.dstate_since_ns;
  f.dstate_active = p.dstate_active;
  f.io_dev = p.io_dev;
  f.runq_wait_max_ns = p.runq_wait_max_ns;
  f.io_lat_max_ns = p.io_lat_max_ns;
  f.hists = pack_hists(p.runq_hist, p.io_lat_hist);
  return f;
}

uint64_t slot_digest(const fp_proc& p) {
  // xxhash64's round over the slot's 8-byte words (and a zero-padded tail).
  constexpr uint64_t kP1 = 0x9e3779b185ebca87ull, kP2 = 0xc2b2ae3d27d4eb4full;
  const auto* bytes = reinterpret_cast<const unsigned char*>(&p);
  uint64_t h = sizeof p * kP1;
  for (size_t i = 0; i < sizeof p; i += sizeof(uint64_t)) {
    uint64_t w = 0;
    std::memcpy(&w, bytes + i, std::min(sizeof w, sizeof p - i));
    h ^= std::rotl(w * kP2, 31) * kP1;
    h = std::rotl(h, 27) * kP1 + 0x85ebca77c2b2ae63ull;
  }
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  return h;
}

Metrics metrics_at(const ProcState& s, uint64_t t) {
  Metrics m = s.now;
  const uint64_t finished = s.now.dstate_ns - s.now.dstate_ongoing_ns;  // the slot's dstate_ns
  const uint64_t since = s.slot.dstate_since_ns;
  m.dstate_ongoing_ns = since != 0 && t > since ? t - since : 0;
  m.dstate_ns = finished + m.dstate_ongoing_ns;
  return m;
}

ProcessTable::Entry* ProcessTable::record(uint64_t ts, const fp_proc& p) {
  ProcKey key = key_of(p);
  auto pit = by_pid_.find(p.tgid);
  bool owns_pid = true;
  if (pit != by_pid_.end() && pit->second != key) {
    if (pit->second.start_ns > key.start_ns) {
      // A late copy of an older process whose pid is taken already.
      owns_pid = false;
    } else {
      // pid reuse: the previous owner is gone, whether or not we saw it exit.
      auto old = procs_.find(pit->second);
      if (old != procs_.end() && !old->second.state.exited) {
        old->second.state.exited = true;
        exited_.push_back(old->first);
        changed_.push_back(old->first);
      }
    }
  }
  if (owns_pid) by_pid_[p.tgid] = key;

  auto [it, created] = procs_.try_emplace(key);
  Entry& e = it->second;
  ProcState& s = e.state;
  if (created) ordered_stale_ = true;
  Vec prev{}, prev_runq{}, prev_io{};
  if (created) {
    s.key = key;
    s.first_seen_ns = ts;
    // The probe's counters start at zero when it creates the slot, so the
    // slot's creation time is a known zero point: a window of a process born
    // while we watch covers all it did. RSS is a gauge, not a counter: the
    // first value seen stands in for it there, so a table that starts never
    // mistakes existing memory for growth.
    if (p.first_seen_ns != 0 && p.first_seen_ns < ts) {
      Metrics zero;
      zero.rss_bytes = rss_bytes_of(p, page_size_);
      prev = vec_of(zero);
      ring_push(e.fine, p.first_seen_ns, prev, prev, kNumMetrics);
      ring_push(e.coarse, p.first_seen_ns, prev, prev, kNumMetrics);
      ring_push(e.runq, p.first_seen_ns, prev_runq, prev_runq, FP_HIST_SLOTS);
      ring_push(e.io, p.first_seen_ns, prev_io, prev_io, FP_HIST_SLOTS);
      s.first_seen_ns = p.first_seen_ns;
    }
  } else {
    if (slot_digest(p) == s.slot_digest) return &e;  // nothing changed: no point
    prev = vec_of(s.now);
    Hist runq, io;
    unpack_hists(s.slot.hists, &runq, &io);
    prev_runq = vec_of(runq);
    prev_io = vec_of(io);
  }

  if (!memo_.empty()) {  // windows computed before this change are stale
    memo_.clear();
    temp_memo_.clear();
    ++memo_epoch_;
  }
  heap_bytes_ -= created ? 0 : heap_bytes_of(e);
  if (e.fine.count != 0 && ts < e.fine.back_ts) ts = e.fine.back_ts;
  s.ppid = p.ppid;
  s.flags = p.flags;
  s.cgroup_id = p.cgroup_id;
  s.comm = comm_of(p);
  s.slot = slot_fields_of(p);
  s.slot_digest = slot_digest(p);
  s.now = metrics_of(p, ts, page_size_);
  s.last_update_ns = ts;
  changed_.push_back(key);
  if (s.now.io_errors != 0) io_errors_.insert(key);
  if (s.now.oom_victim != 0) oom_victims_.insert(key);
  if (p.dstate_since_ns != 0)
    in_dstate_.insert(key);
  else
    in_dstate_.erase(key);

  const Vec cur = vec_of(s.now);
  if (e.fine.count != 0 && e.fine.back_ts == ts) {
    ring_replace_back(e.fine, ts, prev, cur, kNumMetrics);
  } else {
    ring_push(e.fine, ts, prev, cur, kNumMetrics);
  }
  ring_trim(e.fine, ts, kFineKeepNs, kFineMax, kNumMetrics);

  // 1 s rings keep the last change of each second; the oldest point of a
  // process stays as it is (the base of a young process's windows).
  auto per_second = [&](StepRing& r, const Vec& before, const Vec& after, size_t n, uint64_t keep, uint32_t cap) {
    if (r.count >= 2 && bucket(r.back_ts) == bucket(ts)) {
      ring_replace_back(r, ts, before, after, n);
    } else {
      ring_push(r, ts, before, after, n);
    }
    ring_trim(r, ts, keep, cap, n);
  };
  per_second(e.coarse, prev, cur, kNumMetrics, kCoarseKeepNs, kCoarseMax);
  per_second(e.runq, prev_runq, vec_of(p.runq_hist), FP_HIST_SLOTS, kHistKeepNs, kHistMax);
  per_second(e.io, prev_io, vec_of(p.io_lat_hist), FP_HIST_SLOTS, kHistKeepNs, kHistMax);
  heap_bytes_ += heap_bytes_of(e);
  return &e;
}

void ProcessTable::update(uint64_t now_ns, const fp_proc& p) {
  if (p.tgid == 0) return;  // a freed slot
  record(now_ns, p);
}

void ProcessTable::exited(uint64_t now_ns, const ExitRecord& ev) {
  const fp_proc& p = ev.final;
  if (p.tgid == 0) return;
  uint64_t ts = ev.ts_ns != 0 && ev.ts_ns < now_ns ? ev.ts_ns : now_ns;
  Entry* e = record(ts, p);
  if (!e->state.exited) exited_.push_back(e->state.key);
  e->state.exited = true;
  e->state.exit_code = ev.exit_code;
}

void ProcessTable::lost(const ProcKey& k) {
  // What exited() with the last slot recorded did: that slot changes nothing.
  auto it = procs_.find(k);
  if (it == procs_.end() || it->second.state.exited) return;
  it->second.state.exited = true;
  it->second.state.exit_code = 0;
  exited_.push_back(k);
}

void ProcessTable::end_tick(uint64_t /*now_ns*/) {
  // Only the processes marked exited in this tick: the others are untouched.
  removed_.clear();
  for (const ProcKey& k : exited_) {
    auto it = procs_.find(k);
    if (it == procs_.end() || !it->second.state.exited) continue;
    auto pit = by_pid_.find(k.tgid);
    if (pit != by_pid_.end() && pit->second == k) by_pid_.erase(pit);
    heap_bytes_ -= heap_bytes_of(it->second);
    procs_.erase(it);
    ordered_stale_ = true;
    io_errors_.erase(k);
    oom_victims_.erase(k);
    in_dstate_.erase(k);
    for (auto& [span, d] : due_) d.pending.erase(k);
    removed_.push_back(k);
  }
  exited_.clear();
  // Who changed in this tick: a process that changes again in the next one
  // is a busy one, worth cursors (see window()).
  prev_changed_.swap(changed_);
  std::sort(prev_changed_.begin(), prev_changed_.end());
  prev_changed_.erase(std::unique(prev_changed_.begin(), prev_changed_.end()), prev_changed_.end());
  changed_.clear();
  if (changed_.capacity() > 4096 && prev_changed_.size() < 1024) std::vector<ProcKey>().swap(changed_);
  memo_.clear();
  temp_memo_.clear();
  ++memo_epoch_;
}

void ProcessTable::schedule_window(uint64_t span_ns, const ProcKey& k, uint64_t at_ns) const {
  if (at_ns == UINT64_MAX) return;
  SpanDue& d = due_[span_ns];
  auto [it, fresh] = d.pending.try_emplace(k, at_ns);
  if (!fresh) {
    if (it->second <= at_ns) return;  // an earlier visit is already due; it reschedules
    it->second = at_ns;
  }
  d.heap.emplace_back(at_ns, k);
  std::push_heap(d.heap.begin(), d.heap.end(), std::greater<>());
}

const std::vector<ProcKey>& ProcessTable::dirty_keys(uint64_t span_ns, uint64_t now_ns) const {
  SpanDue& d = due_[span_ns];
  if (d.built_for_ns == now_ns) return d.dirty;
  d.built_for_ns = now_ns;
  d.dirty.assign(changed_.begin(), changed_.end());
  while (!d.heap.empty() && d.heap.front().first <= now_ns) {
    auto [at, k] = d.heap.front();
    std::pop_heap(d.heap.begin(), d.heap.end(), std::greater<>());
    d.heap.pop_back();
    auto it = d.pending.find(k);
    if (it == d.pending.end() || it->second != at) continue;  // superseded by an earlier time, or gone
    d.pending.erase(it);
    d.dirty.push_back(k);
  }
  std::sort(d.dirty.begin(), d.dirty.end());
  d.dirty.erase(std::unique(d.dirty.begin(), d.dirty.end()), d.dirty.end());
  return d.dirty;
}

const ProcessTable::Entry* ProcessTable::entry_of(const ProcState& s) const {
  auto it = procs_.find(s.key);
  return it == procs_.end() ? nullptr : &it->second;
}

const std::vector<const ProcessTable::Entry*>& ProcessTable::ordered() const {
  if (ordered_stale_) {
    ordered_.clear();
    ordered_.reserve(procs_.size());
    for (const auto& [k, e] : procs_) ordered_.push_back(&e);
    std::sort(ordered_.begin(), ordered_.end(),
              [](const Entry* a, const Entry* b) { return a->state.key < b->state.key; });
    ordered_stale_ = false;
  }
  return ordered_;
}

WindowDelta ProcessTable::window(const ProcState& s, uint64_t now_ns, uint64_t span_ns) const {
  const Entry* e = entry_of(s);
  if (e == nullptr) return WindowDelta{};
  // Bounded: a burst (10,000 processes whose windows change at once) must
  // not hold 10,000 windows; beyond this the detectors recompute.
  constexpr size_t kMemoMax = 1024;
  if (memo_now_ != now_ns || memo_.size() >= kMemoMax) {
    // After a burst (a first tick visits every process) give the room back.
    if (memo_.capacity() > 64 && memo_.size() < memo_.capacity() / 4)
      std::vector<WindowDelta>().swap(memo_);
    else
      memo_.clear();
    temp_memo_.clear();
    memo_now_ = now_ns;
    ++memo_epoch_;
  }
  // Drop the cursors nobody used for a while (processes gone idle or gone):
  // they pay where a process changes tick after tick; one that changes now
  // and then finds its windows by the walk back (~600 bytes a span less).
  constexpr uint64_t kCursorIdleNs = 250'000'000;
  if (now_ns - std::min(now_ns, cursors_swept_ns_) >= kCursorIdleNs) {
    std::erase_if(cursors_, [&](const auto& kv) { return kv.second.used_ns + kCursorIdleNs < now_ns; });
    cursors_swept_ns_ = now_ns;
  }
  // Cursors are kept for processes that change tick after tick (they also
  // changed in the previous tick, or have cursors already). A process that
  // changes once (10,000 idle processes poked at once) gets its window from a
  // throw-away cursor, the walk back: keeping ~600 bytes per span for each of
  // them held tens of MB after such a burst.
  const CursorKey ck{s.key, span_ns};
  auto it = cursors_.find(ck);
  if (it == cursors_.end() && std::binary_search(prev_changed_.begin(), prev_changed_.end(), s.key))
    it = cursors_.try_emplace(ck).first;
  if (it == cursors_.end()) {
    auto [m, fresh] = temp_memo_.try_emplace(ck, 0u);
    if (!fresh) return memo_[m->second];  // emptied together with memo_
    SpanCursors tmp;
    ++windows_computed_;
    memo_.push_back(window_of(*e, tmp, now_ns, span_ns));
    m->second = static_cast<uint32_t>(memo_.size() - 1);
    return memo_.back();
  }
  SpanCursors& cur = it->second;
  if (cur.memo_epoch == memo_epoch_) return memo_[cur.memo_index];
  ++windows_computed_;
  memo_.push_back(window_of(*e, cur, now_ns, span_ns));
  cur.memo_epoch = memo_epoch_;
  cur.memo_index = static_cast<uint32_t>(memo_.size() - 1);
  return memo_.back();
}

WindowDelta ProcessTable::window_of(const Entry& e, SpanCursors& cur, uint64_t now_ns, uint64_t span_ns) const {
  WindowDelta w;
  const ProcState& s = e.state;  // the table's own copy, whatever the caller passed
  if (e.coarse.count == 0) return w;
  const uint64_t t0 = now_ns > span_ns ? now_ns - span_ns : 0;
  const Vec latest = vec_of(s.now);
  cur.used_ns = now_ns;

  // The fine ring holds every change since its oldest point: exact whenever
  // it reaches back to t0 (or back to the process's first point).
  const bool use_fine = e.fine.count != 0 && (e.fine.front_ts <= t0 || e.fine.front_ts == s.first_seen_ns);
  ring_seek(e.coarse, cur.coarse, t0, latest);
  if (use_fine) {
    if (!cur.fine) cur.fine = std::make_unique<MetricCursor>();
    ring_seek(e.fine, *cur.fine, t0, latest);
  }
  const MetricCursor& base = use_fine ? *cur.fine : cur.coarse;
  const StepRing& ring = use_fine ? e.fine : e.coarse;
  uint64_t next = 0;  // time of the point after the base
  const bool have_next = ring_next_ts(ring, base, next);

  // RSS growth per 1 s step, over the coarse points inside the span.
  const uint32_t steps = ring_points_after(e.coarse, cur.coarse);
  const uint32_t grew = e.coarse.rises - cur.coarse.rises_upto;
  w.rss_growing_fraction = steps >= 2 ? static_cast<double>(grew) / static_cast<double>(steps) : 0.0;
  uint64_t start = t0;
  // The window stays as it is until the point after its base leaves it.
  uint64_t stable = have_next ? next + span_ns : UINT64_MAX;
  if (base.ts > t0) {
    // Younger than the span (or older than the ring): from the oldest point kept.
    start = base.ts;
    w.full = false;
    stable = std::min(stable, base.ts + span_ns);  // becomes full then
  } else {
    w.full = true;
    // The coarse ring keeps the last change of each second. Changes between
    // the base and the next point all fall in the next point's second; if
    // that is t0's second, some may precede t0, and the base state is only
    // known to hold up to the lower bound of that second.
    if (!use_fine && have_next && bucket(next) == bucket(t0)) {
      start = std::max(bucket(t0) * kSec, base.ts);
      stable = 0;  // its span moves with every tick: look again at the next one
    }
  }
  if (start > now_ns) start = now_ns;
  Metrics first = advance(metrics_of_vec(vec_of(base.v)), base.ts, start);
  Metrics last = metrics_at(s, std::max(now_ns, s.last_update_ns));
  w.span_ns = now_ns - start;
  w.delta = diff(last, first);
  w.rss_start = first.rss_bytes;
  w.rss_end = last.rss_bytes;

  // Histograms: the newest 1 s snapshot at or before t0 (or the oldest kept).
  Hist runq, io;
  unpack_hists(s.slot.hists, &runq, &io);
  ring_seek(e.runq, cur.runq, t0, vec_of(runq));
  ring_seek(e.io, cur.io, t0, vec_of(io));
  w.runq_hist = hist_delta(runq, hist_of(vec_of(cur.runq.v)));
  w.io_lat_hist = hist_delta(io, hist_of(vec_of(cur.io.v)));
  uint64_t hist_next = UINT64_MAX;  // the oldest histogram point after t0
  uint64_t t = 0;
  if (ring_next_ts(e.runq, cur.runq, t)) hist_next = std::min(hist_next, t);
  if (ring_next_ts(e.io, cur.io, t)) hist_next = std::min(hist_next, t);
  if (hist_next != UINT64_MAX) stable = std::min(stable, hist_next + span_ns);
  w.stable_until_ns = stable;
  return w;
}

std::pair<uint64_t, uint64_t> ProcessTable::rss_range(const ProcState& st, uint64_t now_ns, uint64_t span_ns) const {
  const Entry* e = entry_of(st);
  if (e == nullptr || e->coarse.count == 0) return {0, 0};
  const ProcState& s = e->state;
  const uint64_t t0 = now_ns > span_ns ? now_ns - span_ns : 0;
  const Vec latest = vec_of(s.now);
  const bool use_fine = e->fine.count != 0 && (e->fine.front_ts <= t0 || e->fine.front_ts == s.first_seen_ns);
  RingWalker wk(use_fine ? e->fine : e->coarse, latest);
  uint64_t lo = latest[kRssIndex], hi = latest[kRssIndex];
  while (wk.ts > t0 && wk.index > 0) {
    wk.back();
    lo = std::min(lo, wk.v[kRssIndex]);
    hi = std::max(hi, wk.v[kRssIndex]);
  }
  const uint64_t last = s.now.rss_bytes;  // a gauge: as at the last update
  return {std::min(lo, last), std::max(hi, last)};
}

size_t ProcessTable::memory_bytes() const {
  // Kept as it goes (status asks every second; walking 10,000 entries for it
  // cost more than a tick).
  constexpr size_t kNode = 2 * sizeof(void*);  // hash node link and its bucket
  size_t total = sizeof(*this) + ordered_.capacity() * sizeof(void*) + heap_bytes_;
  total += procs_.size() * (kNode + sizeof(std::pair<const ProcKey, Entry>));
  total += by_pid_.size() * (kNode + sizeof(std::pair<const uint32_t, ProcKey>));
  total += cursors_.size() * (kNode + sizeof(std::pair<const CursorKey, SpanCursors>));
  total += memo_.capacity() * sizeof(WindowDelta);
  return total;
}

const ProcState* ProcessTable::find(const ProcKey& k) const {
  auto it = procs_.find(k);
  return it == procs_.end() ? nullptr : &it->second.state;
}

const ProcState* ProcessTable::find_pid(uint32_t tgid) const {
  auto it = by_pid_.find(tgid);
  return it == by_pid_.end() ? nullptr : find(it->second);
}

std::vector<const ProcState*> ProcessTable::ancestors(const ProcState& s, size_t max_depth) const {
  std::vector<const ProcState*> out;
  std::set<uint32_t> seen{s.key.tgid};
  uint32_t ppid = s.ppid;
  while (out.size() < max_depth && ppid != 0 && seen.insert(ppid).second) {
    const ProcState* parent = find_pid(ppid);
    if (parent == nullptr) break;
    out.push_back(parent);
    ppid = parent->ppid;
  }
  return out;
}

}  // namespace fp
