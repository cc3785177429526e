// Pinning the probe in bpffs so that it outlives the daemon: a restarted
// faultprobed (crash, upgrade, kill -9) takes the running probe over and its
// counters continue. This header holds the on-disk layout and the bpffs
// plumbing; pin.cpp also holds the Probe's side of it: Probe::pin (what a
// freshly loaded probe pins) and Probe::take_over (adopting the pins). When
// to do either is Probe::start's choice (probe.cpp).
//
// Layout of a pin directory (default /sys/fs/bpf/faultprobe):
//   map_<name>        every map of the object (proc_slots, events, bss, ...)
//   link_<hook>       one bpf_link per attached tracepoint
//   link_cpu_tick_<n> one perf-event bpf_link per CPU clock tick
//   meta              a one-entry array holding PinMeta; written LAST, so a
//                     directory without it is an interrupted start (partial)
#pragma once

#include <cstdint>
#include <string>

#include "util/result.h"

namespace fp::pin {

inline constexpr uint64_t kMetaMagic = 0x4650'5049'4e00'0001ull;  // "FPPIN" + 1
// bump when PinMeta or the probe's maps change (2: 32 hooks; 3: + thread_ts, sizes as asked;
// 4: fp_thread.faults, no page_fault_user/rss_stat programs; 5: task IO accounting (fp_proc and
// fp_thread grew, + task_io, io_from_submitter, the balance_dirty_pages hook); 6: + seed_iter,
// fp_oom_event.tid; 7: + runq_cpu map, runq_blame; 8: network counters in fp_proc, net_owners and
// net_endpoints maps, 9 network hooks, 40 hook entries; 9: + net_drop_reasons map, kfree_skb hook,
// fp_net_ep.drops; 10: - sock_recv_length/sock_send_length hooks, + net_pending map, net_resolve link;
// 11: + inflight_rq array, fp_inflight_io.slot/gen, error_report_end hook, fp_proc.kernel_errors;
// 12: packed exit records (fp_exit_event), + exit_scratch map, rodata fp_loaded_ns)
inline constexpr uint32_t kMetaFormat = 12;
inline constexpr int kMaxHooks = 40;

struct PinnedHook {
  char name[32];
  uint8_t mode;  // AttachMode
  uint8_t _pad[7];
  char reason[120];
};
static_assert(sizeof(PinnedHook) == 160);

// What a taking-over daemon must know and cannot read back from the kernel.
struct PinMeta {
  uint64_t magic;
  uint32_t format;
  uint32_t ncpus;           // possible CPUs: the dirty bitmap is sized by it
  uint64_t identity;        // hash of the BPF object + ABI (see probe_identity())
  // As asked (max_procs 0 = sized from the machine); the maps say what they got.
  uint32_t max_procs, max_threads, max_inflight_io, ringbuf_bytes;
  uint32_t cpu_tick_ms;
  uint8_t force_raw_tp;
  uint8_t cpu_tick_attached;
  uint8_t unpinnable;       // something is attached that cannot be pinned: no takeover
  uint8_t thread_ts;        // per-thread state in task storage (else the tid hash)
  uint32_t cpu_tick_links;  // link_cpu_tick_0..N-1
  uint32_t loader_pid;      // who loaded it (for the log)
  uint64_t attached_at_ns;  // CLOCK_MONOTONIC when first attached: the counters' origin
  uint32_t nhooks;
  uint8_t task_io;            // IO bytes from the kernel's task IO accounting (else the submitter's)
  uint8_t io_from_submitter;  // ProbeOptions::io_from_submitter, as asked
  uint8_t seed_iter;          // link_seed_iter: the task iterator that seeds at a takeover
  uint8_t runq_blame_asked;   // ProbeOptions::runq_blame
  uint8_t runq_blame;         // run-queue blame is on (asked, and the kernel allows it)
  uint8_t net_resolve;        // link_net_resolve: the socket-owner resolver's iterator
  uint8_t _pad1[2];
  PinnedHook hooks[kMaxHooks];
};

// 64-bit FNV-1a, the identity hash (stable across builds and hosts).
uint64_t fnv1a(const void* data, size_t len, uint64_t h = 0xcbf29ce484222325ull);

// Whether `path` (or, when it does not exist, its parent) is on a BPF
// filesystem. The error says how to mount one.
Result<void> check_bpffs(const std::string& path);
bool exists(const std::string& path);

// Pins `fd` at `path`; the error names the path.
Result<void> pin_fd(int fd, const std::string& path);
// Opens a pinned object; the caller owns the fd.
Result<int> open_pinned(const std::string& path);

// Checks a pinned map's shape (kAnySize: do not check); the error names what differs.
inline constexpr uint32_t kAnySize = UINT32_MAX;
Result<void> check_map(int fd, const char* name, uint32_t type, uint32_t key_size, uint32_t value_size,
                       uint32_t max_entries);

// Checks that a pinned object is a bpf_link.
Result<void> check_link(int fd, const std::string& name);
// A new fd for the program a link runs (-1 if it cannot be had).
int prog_of_link(int link_fd);

// Creates the meta map, fills and pins it (the commit point of a fresh pin).
Result<void> write_meta(const std::string& dir, const PinMeta& meta);
Result<PinMeta> read_meta(const std::string& dir);

// Unpins everything in `dir` and removes it: links first, so that the
// programs detach before their maps go, then the rest. Refuses a directory
// that is not on bpffs (a typo must never delete files). Missing dir: ok.
Result<void> remove_dir(const std::string& dir);

}  // namespace fp::pin
