// Per-process deltas between two samples: what each process did in the interval.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "probe/hist.h"
#include "probe/sample.h"

namespace fp {

struct ProcDelta {
  ProcKey key;
  uint32_t ppid = 0;
  uint32_t flags = 0;  // FP_PROC_*
  uint64_t cgroup_id = 0;
  std::string comm;
  bool started = false;  // not in the first sample: born (or first seen) in the interval
  bool exited = false;
  int exit_status = 0;   // exit(2) status when it exited normally
  int exit_signal = 0;   // terminating signal, 0 if none
  bool core_dumped = false;

  uint64_t cpu_ns = 0, runq_wait_ns = 0, runq_waits = 0, runq_wait_max_ns = 0, runq_wait_p99_ns = 0;
  uint64_t nvcsw = 0, nivcsw = 0;
  uint64_t dstate_ns = 0;          // includes the part of an ongoing D-state inside the interval
  uint64_t dstate_max_ns = 0;
  uint64_t dstate_ongoing_ns = 0;  // how long the current D-state has lasted at the end (0: none)
  uint64_t forks = 0, execs = 0, threads = 0;
  // Bytes the process caused (task IO accounting, as /proc/PID/io: buffered
  // writes when dirtied, by the writer); the submitter's bytes where the
  // kernel has none.
  uint64_t io_read_bytes = 0, io_write_bytes = 0, io_cancelled_write_bytes = 0;
  // Block requests the process submitted: their bytes, counts, latency, errors.
  uint64_t io_submit_read_bytes = 0, io_submit_write_bytes = 0, io_read_reqs = 0, io_write_reqs = 0;
  uint64_t io_lat_ns = 0, io_lat_max_ns = 0, io_lat_p99_ns = 0, io_errors = 0;
  uint64_t dirty_throttle_ns = 0, dirty_throttles = 0;  // paused in dirty-page balancing
  // Network, charged to the socket's owner (bpf/net.bpf.c).
  uint64_t net_connects = 0, net_connect_failures = 0, net_retransmits = 0, net_segs_out = 0;
  uint64_t net_resets_sent = 0, net_resets_received = 0, net_rcvq_overflows = 0, net_drops = 0;
  // The kernel's own error reports (KFENCE, KASAN, WARN) made in its threads' context (bpf/kerror.bpf.c).
  uint64_t kernel_errors = 0;
  uint64_t page_faults = 0, reclaim_ns = 0, reclaims = 0;
  uint64_t rss_bytes = 0;          // gauge at the end of the interval (at exit for exited ones)
  uint64_t oom_victim = 0, fatal_signals = 0;
  uint32_t last_fatal_sig = 0;
  Hist runq_hist{}, io_lat_hist{};
};

// Splits a raw exit code as wait(2) would.
struct ExitStatus {
  int status = 0, signal = 0;
  bool core = false;
};
ExitStatus decode_exit_code(uint32_t raw);

// RSS in bytes from the probe's per-mm-counter pages (file + anon + shmem).
uint64_t rss_bytes_of(const fp_proc& p, uint64_t page_size);

// Deltas over [before.ts_ns, after.ts_ns]. A process in `after` (or in `exits`)
// that is also in `before` under the same ProcKey gets after - before; one that
// is not (new, or a reused pid) gets its whole counters. Exited processes come
// from `exits` (the ring buffer's exit events received in the interval), so
// processes that lived and died inside the interval are included. Maxima are
// exact when the cumulative maximum rose in the interval and otherwise bounded
// from the interval's histogram. Sorted by cpu_ns, descending.
std::vector<ProcDelta> compute_deltas(const Sample& before, const Sample& after,
                                      const std::vector<ExitRecord>& exits, uint64_t page_size);

}  // namespace fp
