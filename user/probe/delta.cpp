#include "probe/delta.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace fp {
namespace {

// Cumulative counters only grow; a smaller `after` means a slot we should not
// have matched, and 0 is the least wrong answer.
uint64_t sub(uint64_t after, uint64_t before) { return after > before ? after - before : 0; }

Hist to_hist(const __u32 (&h)[FP_HIST_SLOTS]) {
  Hist out{};
  for (unsigned i = 0; i < FP_HIST_SLOTS; ++i) out[i] = h[i];
  return out;
}

bool empty(const Hist& h) {
  return std::all_of(h.begin(), h.end(), [](uint64_t c) { return c == 0; });
}

// The largest value seen in the interval. Exact when the cumulative maximum
// rose; otherwise the interval's largest sample is at most the top of its
// highest histogram bucket and at most the (unchanged) cumulative maximum.
uint64_t interval_max(uint64_t max_after, uint64_t max_before, const Hist& interval) {
  if (max_after > max_before) return max_after;
  if (empty(interval)) return 0;
  return std::min(hist_top_ns(interval), max_after);
}

// p99 of the interval, never above the interval's maximum. hist_quantile_ns
// treats max_ns == 0 as "no bound", but a 0 maximum with samples (all in
// [0, 1) ns) is a real bound, so the clamp is applied here.
uint64_t interval_p99(const Hist& interval, uint64_t max_ns) {
  if (empty(interval)) return 0;
  return std::min(hist_quantile_ns(interval, 0.99), max_ns);
}

// Finished D-state time plus the part of an ongoing one up to `ts`.
uint64_t effective_dstate(const fp_proc& p, uint64_t ts) {
  uint64_t ongoing = p.dstate_since_ns != 0 && ts > p.dstate_since_ns ? ts - p.dstate_since_ns : 0;
  return p.dstate_ns + ongoing;
}

std::string comm_of(const fp_proc& p) { return std::string(p.comm, strnlen(p.comm, FP_COMM_LEN)); }

// `before` is null for a process first seen in this interval: it is compared
// against zeros. `ts_before` and `ts_after` are the times the two copies describe.
ProcDelta make_delta(const fp_proc* before, uint64_t ts_before, const fp_proc& after, uint64_t ts_after,
                     uint64_t page_size) {
  static const fp_proc kZero{};
  const fp_proc& b = before != nullptr ? *before : kZero;
  const fp_proc& a = after;

  ProcDelta d;
  d.key = key_of(a);
  d.ppid = a.ppid;
  d.flags = a.flags;
  d.cgroup_id = a.cgroup_id;
  d.comm = comm_of(a);
  d.started = before == nullptr;

  d.cpu_ns = sub(a.cpu_ns, b.cpu_ns);
  d.runq_wait_ns = sub(a.runq_wait_ns, b.runq_wait_ns);
  d.runq_waits = sub(a.runq_waits, b.runq_waits);
  d.nvcsw = sub(a.nvcsw, b.nvcsw);
  d.nivcsw = sub(a.nivcsw, b.nivcsw);
  d.forks = sub(a.forks, b.forks);
  d.execs = sub(a.execs, b.execs);
  d.threads = sub(a.threads, b.threads);
  d.io_read_bytes = sub(a.io_read_bytes, b.io_read_bytes);
  d.io_write_bytes = sub(a.io_write_bytes, b.io_write_bytes);
  d.io_cancelled_write_bytes = sub(a.io_cancelled_write_bytes, b.io_cancelled_write_bytes);
  d.io_submit_read_bytes = sub(a.io_submit_read_bytes, b.io_submit_read_bytes);
  d.io_submit_write_bytes = sub(a.io_submit_write_bytes, b.io_submit_write_bytes);
  d.dirty_throttle_ns = sub(a.dirty_throttle_ns, b.dirty_throttle_ns);
  d.dirty_throttles = sub(a.dirty_throttles, b.dirty_throttles);
  d.net_connects = sub(a.net_connects, b.net_connects);
  d.net_connect_failures = sub(a.net_connect_failures, b.net_connect_failures);
  d.net_retransmits = sub(a.net_retransmits, b.net_retransmits);
  d.net_segs_out = sub(a.net_segs_out, b.net_segs_out);
  d.net_resets_sent = sub(a.net_resets_sent, b.net_resets_sent);
  d.net_resets_received = sub(a.net_resets_received, b.net_resets_received);
  d.net_rcvq_overflows = sub(a.net_rcvq_overflows, b.net_rcvq_overflows);
  d.net_drops = sub(a.net_drops, b.net_drops);
  d.kernel_errors = sub(a.kernel_errors, b.kernel_errors);
  d.io_read_reqs = sub(a.io_read_reqs, b.io_read_reqs);
  d.io_write_reqs = sub(a.io_write_reqs, b.io_write_reqs);
  d.io_lat_ns = sub(a.io_lat_ns, b.io_lat_ns);
  d.io_errors = sub(a.io_errors, b.io_errors);
  d.page_faults = sub(a.page_faults, b.page_faults);
  d.reclaim_ns = sub(a.reclaim_ns, b.reclaim_ns);
  d.reclaims = sub(a.reclaims, b.reclaims);
  d.oom_victim = sub(a.oom_victim, b.oom_victim);
  d.fatal_signals = sub(a.fatal_signals, b.fatal_signals);
  d.last_fatal_sig = a.last_fatal_sig;
  d.rss_bytes = rss_bytes_of(a, page_size);

  d.runq_hist = hist_delta(to_hist(a.runq_hist), to_hist(b.runq_hist));
  d.io_lat_hist = hist_delta(to_hist(a.io_lat_hist), to_hist(b.io_lat_hist));
  d.runq_wait_max_ns = interval_max(a.runq_wait_max_ns, b.runq_wait_max_ns, d.runq_hist);
  d.io_lat_max_ns = interval_max(a.io_lat_max_ns, b.io_lat_max_ns, d.io_lat_hist);
  d.runq_wait_p99_ns = interval_p99(d.runq_hist, d.runq_wait_max_ns);
  d.io_lat_p99_ns = interval_p99(d.io_lat_hist, d.io_lat_max_ns);

  // D-state: finished sleeps plus the ongoing one, measured at each copy's time.
  uint64_t eff_before = before != nullptr ? effective_dstate(b, ts_before) : 0;
  d.dstate_ns = sub(effective_dstate(a, ts_after), eff_before);
  d.dstate_ongoing_ns = a.dstate_since_ns != 0 && ts_after > a.dstate_since_ns ? ts_after - a.dstate_since_ns : 0;
  uint64_t finished_max = 0;
  if (a.dstate_max_ns > b.dstate_max_ns) {
    finished_max = a.dstate_max_ns;
  } else if (d.dstate_ns > 0) {
    finished_max = std::min<uint64_t>(a.dstate_max_ns, d.dstate_ns);
  }
  d.dstate_max_ns = std::max(finished_max, d.dstate_ongoing_ns);
  return d;
}

}  // namespace

ExitStatus decode_exit_code(uint32_t raw) {
  ExitStatus s;
  s.signal = static_cast<int>(raw & 0x7f);
  s.core = (raw & 0x80) != 0;
  s.status = static_cast<int>((raw >> 8) & 0xff);
  return s;
}

// Negative counters (the kernel's per-CPU batching can leave one briefly below
// zero) count as 0, as the kernel's own get_mm_counter() readers do.
uint64_t rss_bytes_of(const fp_proc& p, uint64_t page_size) {
  constexpr unsigned kFile = 0, kAnon = 1, kShmem = 3;  // 2 is MM_SWAPENTS, not resident
  uint64_t pages = 0;
  for (unsigned i : {kFile, kAnon, kShmem}) {
    if (p.rss_pages[i] > 0) pages += static_cast<uint64_t>(p.rss_pages[i]);
  }
  return pages * page_size;
}

std::vector<ProcDelta> compute_deltas(const Sample& before, const Sample& after,
                                      const std::vector<ExitRecord>& exits, uint64_t page_size) {
  std::map<ProcKey, const fp_proc*> prev;
  for (const fp_proc& p : before.procs) prev[key_of(p)] = &p;
  auto base_of = [&prev](const ProcKey& k) -> const fp_proc* {
    auto it = prev.find(k);
    return it == prev.end() ? nullptr : it->second;
  };

  // One exit per process; should the ring buffer ever carry two, the later wins.
  std::map<ProcKey, const ExitRecord*> exited;
  for (const ExitRecord& e : exits) {
    const ExitRecord*& slot = exited[key_of(e.final)];
    if (slot == nullptr || e.ts_ns >= slot->ts_ns) slot = &e;
  }

  std::vector<ProcDelta> out;
  out.reserve(after.procs.size() + exited.size());
  std::set<ProcKey> seen;
  for (const fp_proc& p : after.procs) {
    ProcKey k = key_of(p);
    // An exit event carries newer counters than a live copy of the same process.
    if (exited.count(k) != 0 || !seen.insert(k).second) continue;
    out.push_back(make_delta(base_of(k), before.ts_ns, p, after.ts_ns, page_size));
  }
  for (const auto& [k, e] : exited) {
    ProcDelta d = make_delta(base_of(k), before.ts_ns, e->final, e->ts_ns, page_size);
    ExitStatus st = decode_exit_code(e->exit_code);
    d.exited = true;
    d.exit_status = st.status;
    d.exit_signal = st.signal;
    d.core_dumped = st.core;
    out.push_back(std::move(d));
  }

  std::sort(out.begin(), out.end(), [](const ProcDelta& x, const ProcDelta& y) {
    if (x.cpu_ns != y.cpu_ns) return x.cpu_ns > y.cpu_ns;
    return x.key < y.key;
  });
  return out;
}

}  // namespace fp
