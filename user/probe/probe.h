// The kernel probe: loads the BPF programs, reads the per-process counters
// (an mmap-ed array, no syscalls per process) and drains the event ring buffer.
// Implemented in probe/loader/ (libbpf): probe.cpp (start, load, attach),
// pin.cpp (pinning, takeover), slots.cpp (the slot window and refresh),
// ring.cpp (events), stats.cpp (drops, occupancy), kernel.cpp (what the
// kernel offers; the attach choice itself is probe/attach.h).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "faultprobe/abi.h"
#include "probe/attach.h"
#include "probe/net_resolve.h"
#include "probe/sample.h"
#include "probe/seed.h"
#include "util/result.h"

struct faultprobe;  // the bpftool skeleton
struct ring_buffer;

namespace fp {

struct ProbeOptions {
  // Per-process slots; 0 sizes them from the machine (default_max_procs()).
  uint32_t max_procs = 0;
  // Entries of the per-thread hash, used only where task storage is not
  // (raw_tp hooks); otherwise the hash gets one entry.
  uint32_t max_threads = FP_DEFAULT_MAX_THREADS;
  uint32_t max_inflight_io = FP_DEFAULT_MAX_INFLIGHT_IO;
  // Entries of the array requests in flight are kept in first (a power of two,
  // at most FP_INFLIGHT_ARRAY_ENTRIES); a request whose entry another holds goes
  // to the max_inflight_io hash. Fewer only to exercise that path in tests.
  uint32_t inflight_array_entries = FP_INFLIGHT_ARRAY_ENTRIES;
  uint32_t ringbuf_bytes = FP_DEFAULT_RINGBUF_BYTES;  // power of two, >= page size
  // Use raw_tp even where tp_btf is available (to exercise the fallback).
  bool force_raw_tp = false;
  // Hooks (tracepoint names) to bind raw_tp even where tp_btf works, the
  // others as chosen: a test runs that program with BPF_PROG_TEST_RUN, which
  // runs raw_tp programs only (error_report_end: no kernel bug needed).
  std::vector<std::string> raw_tp_hooks;
  // Stamp wakeups for run-queue waits even where the kernel's sched_info
  // counts them (to exercise that path; it is what kernels without
  // CONFIG_SCHED_INFO get).
  bool runq_from_wakeups = false;
  // Count io_read_bytes/io_write_bytes from the block requests' submitter
  // even where the kernel keeps task IO accounting (to exercise that path;
  // it is what kernels without CONFIG_TASK_IO_ACCOUNTING get).
  bool io_from_submitter = false;
  // Charge run-queue waits, CPU by CPU, to who ran meanwhile (bpf/runq_blame.bpf.h),
  // where the kernel keeps sched_info; off: runq_starvation blames the top CPU consumer.
  bool runq_blame = true;
  // How often each CPU closes its running task's on-CPU interval, so that a
  // task that never switches out still shows CPU time. 0 disables it.
  uint32_t cpu_tick_ms = 50;
  // How every process alive at the start gets its slot (probe/seed.h).
  SeedMode seed = SeedMode::Auto;
  // bpffs directory to pin the probe in ("" = no pinning: the probe dies with
  // this object). With one, maps and links are pinned there and a later
  // start with the same directory takes the running probe over (see
  // Probe::took_over()); the pins outlive this object and this process.
  std::string pin_dir;
};

// Where faultprobed pins its probe.
inline constexpr const char* kDefaultPinDir = "/sys/fs/bpf/faultprobe";

using DropCounts = std::array<uint64_t, FP_DROP_NR>;

// The slot count of ProbeOptions::max_procs = 0: room for twice the
// processes alive now, at least 16384 (8.5 MiB of slots), at most pid_max
// (no more can exist at once).
uint32_t default_max_procs();

// Checks what the probe needs before trying to load it: privileges and BTF.
// The error says what is missing and what to do.
Result<void> check_probe_prerequisites();

class Probe {
 public:
  // open -> size maps -> choose attach modes -> load -> fill free slots -> attach
  // [-> pin]. With opts.pin_dir holding the pins of an identical probe (same
  // BPF object, same options), takes it over instead: no load, no gap, the
  // counters continue. Pins of another build, other options or an
  // interrupted start are removed (logged) and a fresh probe is loaded.
  // If pin_dir is not on bpffs the probe runs unpinned, with a warning.
  static Result<std::unique_ptr<Probe>> start(const ProbeOptions& opts = {});
  // Unpins everything in `pin_dir` and removes it: the programs detach once
  // no process holds them (a running taker-over keeps them until it exits).
  // A missing directory is not an error.
  static Result<void> remove_pins(const std::string& pin_dir);
  ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // Incremental read, for the sampling loop: copies only the slots the probe
  // touched since the previous refresh and returns their indexes; the copies
  // are changed_copies(), in the same order (a freed slot shows as tgid 0).
  // No syscalls; idle processes cost nothing. There is no copy of the
  // slots that did not change (a 64-bit digest per slot says whether a
  // second copy differs from the last one returned, see refresh()).
  const std::vector<uint32_t>& refresh();
  // The copies of the last refresh(): changed_copies()[i] is slot refresh()[i].
  // Valid until the next refresh().
  const std::vector<fp_proc>& changed_copies() const { return copies_; }
  // A copy of one slot as it is now (tgid 0: free); nullopt if the slot
  // is out of range or kept changing owner while it was copied.
  std::optional<fp_proc> copy(uint32_t slot) const;
  // CLOCK_MONOTONIC when the last refresh began.
  uint64_t refreshed_at_ns() const { return refreshed_at_ns_; }
  // Bytes the reader keeps for the slots: the last refresh's copies
  // (capacity) and the per-slot digests.
  size_t reader_bytes() const { return copies_.capacity() * sizeof(fp_proc) + digests_.capacity() * sizeof(uint64_t); }

  // Full copy of every live process (refresh, then copy every used slot).
  void read(Sample& out);
  Sample read() {
    Sample s;
    read(s);
    return s;
  }
  // Reference read that copies every used slot from the map (no dirty
  // tracking). For tests and benchmarks.
  void read_full(Sample& out) const;

  // Drains the ring buffer into `out` without blocking; returns events taken.
  int drain(EventBatch& out);
  // Waits up to `timeout` for an event, then drains. Returns events taken.
  int poll(EventBatch& out, std::chrono::milliseconds timeout);
  // Readable when the ring buffer has records (its epoll fd): for a loop
  // that waits on other fds too (PSI triggers), then calls drain().
  int event_fd() const;
  // Events whose size or type did not match this build's ABI.
  uint64_t malformed_events() const { return malformed_; }

  DropCounts drops() const;
  const std::vector<HookStatus>& hooks() const { return hooks_; }
  // The BPF link of an attached hook ("error_report_end"), -1 if none: a
  // test finds the program from it and runs it with BPF_PROG_TEST_RUN.
  int hook_link_fd(std::string_view hook) const {
    for (const auto& [name, fd] : links_)
      if (name.size() == 5 + hook.size() && name.compare(0, 5, "link_") == 0 && name.compare(5, hook.size(), hook) == 0)
        return fd;
    return -1;
  }
  // Whether the per-CPU clock tick is attached (see ProbeOptions::cpu_tick_ms).
  bool cpu_tick_attached() const { return cpu_tick_; }
  // Where per-thread state lives: BPF task storage (tp_btf hooks on a kernel
  // that allows it everywhere) or the tid hash.
  bool thread_task_storage() const { return thread_ts_; }
  // Run-queue waits from the kernel's sched_info (no wakeup hooks loaded).
  bool runq_from_sched_info() const {
    for (const auto& h : hooks_)
      if (h.name == "sched_wakeup") return h.mode == AttachMode::NotNeeded;
    return false;
  }
  // IO bytes (io_read_bytes, io_write_bytes) from the kernel's per-task IO
  // accounting, charged to whoever caused the IO as /proc/PID/io does;
  // false: from the block requests' submitter (no task IO accounting).
  bool io_bytes_from_task() const { return task_io_; }
  // The same for status and reports: "task_io_accounting" or "submitter".
  const char* io_bytes_from() const { return task_io_ ? "task_io_accounting" : "submitter"; }
  // The per-CPU run-queue blame tables (bpf/runq_blame.bpf.h; read with
  // RunqBlameReader), -1 when they are off; why they are off.
  int runq_blame_fd() const { return runq_blame_ ? fds_.runq_cpu : -1; }
  const std::string& runq_blame_reason() const { return runq_blame_reason_; }
  // The (process, remote endpoint) network counters (bpf/net.bpf.c; read with
  // NetEndpointReader). Always there once loaded.
  int net_endpoints_fd() const { return fds_.net_endpoints; }
  int net_drop_reasons_fd() const { return fds_.net_drop_reasons; }
  // Socket owners the probe did not learn where they run (probe/
  // net_resolve.h): the daemon's loop calls resolve_net_owners_if_due every
  // tick (one read of a .bss counter when nothing waits); it walks when
  // events wait and the pacer allows, then counts what no walk can charge.
  // resolve_net_owners walks now and waits for it (tests).
  void resolve_net_owners_if_due(uint64_t now_ns);
  void resolve_net_owners();
  uint64_t net_pending_events() const;
  const NetResolveStatus& net_resolve_status() const { return net_resolve_; }
  // Counters whose hooks could not be attached on this kernel (and the task
  // IO accounting, when IO bytes fall back to the submitter's).
  std::vector<std::string> unavailable_counters() const;
  // The hardware fault sources, available or not.
  std::vector<HwSourceStatus> hardware_sources() const;

  // Map occupancy, for status and leak checks (these iterate the maps: not per sample).
  size_t proc_index_entries() const;
  size_t thread_entries() const;
  // Block requests (and bios) the probe has in flight: in the array, in the hash.
  struct InflightCounts {
    size_t array = 0, hash = 0;
  };
  InflightCounts inflight_io_entries() const;
  // Runs of the hooks' programs the kernel skipped because the same program
  // was already running on that CPU (in drops() as FP_DROP_HOOK_NESTED).
  uint64_t hook_runs_skipped() const;
  uint32_t slots_high_water() const;
  // Whether the probe holds a slot for this tgid right now (one map lookup).
  bool indexed(uint32_t tgid) const;
  uint32_t max_procs() const { return max_procs_; }
  // The probe's maps as mapped into this process (they count in its RSS):
  // the slot array (only the chunks whose slots changed in the last 2 s are
  // mapped), the ring buffer (its data pages twice, as the kernel maps
  // them), the dirty bitmap and .bss.
  struct MappedBytes {
    size_t slots = 0, ring = 0, other = 0;
  };
  MappedBytes mapped_bytes() const;
  // When the probe was first attached; after a takeover, the original time.
  uint64_t attached_at_ns() const { return attached_at_ns_; }
  // How the processes alive at the start were given their slots (load or takeover).
  const SeedStatus& seed_status() const { return seed_; }
  // Whether this object took over a pinned probe (counters continue) rather
  // than loading one, and whether the probe is pinned at all.
  bool took_over() const { return took_over_; }
  bool pinned() const { return !pin_dir_.empty(); }
  const std::string& pin_dir() const { return pin_dir_; }

 private:
  Probe() = default;
  Result<void> load(const ProbeOptions& opts);
  Result<void> take_over(const ProbeOptions& opts);
  Result<void> pin(const ProbeOptions& opts);
  Result<void> map_views();
  Result<int> attach_hook(const HookStatus& st, int prog_fd, const std::string& tracefs);
  void attach_cpu_tick(uint32_t period_ms);
  void seed(SeedMode mode);  // seed.cpp
  static int on_event(void* ctx, void* data, size_t size);
  void resolve_oom_victim(OomRecord& o) const;

  struct SkelDeleter {
    void operator()(struct faultprobe* s) const;
  };
  // The maps, whoever owns them: the skeleton after a load, owned_fds_ after
  // a takeover (there is no skeleton then).
  struct MapFds {
    int proc_slots = -1, proc_index = -1, free_slots = -1, threads = -1, inflight_io = -1, inflight_rq = -1, events = -1,
        drops = -1, dirty = -1, bss = -1, thread_ts = -1, runq_cpu = -1, net_owners = -1, net_endpoints = -1,
        net_drop_reasons = -1, net_pending = -1;
  };
  std::unique_ptr<struct faultprobe, SkelDeleter> skel_;
  MapFds fds_;
  std::vector<int> owned_fds_;   // closed by the destructor
  // Attachments: bpf_link fds (closing one detaches unless it is pinned),
  // named for pinning: link_<hook> / link_cpu_tick_<n>.
  std::vector<std::pair<std::string, int>> links_;
  std::vector<int> hook_prog_fds_;  // the attached hooks' programs (owned), for hook_runs_skipped()
  std::vector<int> perf_fds_;    // ioctl-attached perf events (kernels without perf links)
  bool cpu_tick_ = false;
  uint32_t cpu_tick_links_ = 0;
  bool thread_ts_ = false;
  bool runq_sched_info_ = false;
  bool task_io_ = false;
  bool runq_blame_ = false;
  std::string runq_blame_reason_;
  bool took_over_ = false;
  // Seeding (seed.cpp): the task iterator's link (-1: none; why not in
  // seed_iter_reason_), the pass's counters in .bss, what the pass did.
  int seed_link_ = -1;
  std::string seed_iter_reason_;
  const volatile fp_seed_stats* seed_stats_ = nullptr;
  SeedStatus seed_;
  // The socket-owner resolver (loader/net_resolve.cpp): its iterator link
  // (-1: none, why in net_resolve_.reason), counters in .bss, the pacer.
  int net_resolve_link_ = -1;
  const volatile uint64_t* net_pending_events_ = nullptr;
  const volatile fp_net_resolve_stats* net_resolve_stats_ = nullptr;
  NetResolveStatus net_resolve_;
  NetResolvePacer net_resolve_pacer_;
  // A walk runs on its own thread (tens of ms at 10,000 processes: not in
  // the daemon's tick); the tick that finds it done sweeps and accounts.
  struct NetWalk {
    uint64_t start_ns = 0, pending_before = 0, charged_before = 0, found_before = 0, events_before = 0;
    std::string error;
  } net_walk_;
  std::thread net_walker_;
  std::atomic<bool> net_walk_done_{false};
  void start_net_walk();
  void finish_net_walk();
  bool iters_refused_ = false;   // the retried load: neither iterator
  bool resync_ = false;          // the next refresh copies every used slot
  std::string pin_dir_;
  struct ring_buffer* rb_ = nullptr;
  // Copies a slot consistently (mapping its chunk first); false if it kept changing.
  bool copy_slot(uint32_t slot, fp_proc& dst, uint64_t now_ns) const;
  // The slot array: slots_map_len_ bytes of address space reserved, mapped
  // in chunks where slots are read, unmapped when idle (see map_slot).
  bool map_slot(uint32_t slot, uint64_t now_ns) const;
  void unmap_idle_slot_chunks(uint64_t now_ns);
  void recheck_marked_slots(uint32_t hwm);
  bool take_slot(uint32_t slot);
  static constexpr size_t kSlotChunkBytes = 16 * 1024;
  static constexpr uint64_t kSlotChunkIdleNs = 2'000'000'000ull;
  const fp_proc* slots_ = nullptr;
  size_t slots_map_len_ = 0;
  size_t slot_chunk_bytes_ = kSlotChunkBytes;
  mutable std::vector<uint64_t> chunk_used_ns_;  // last read of a slot in it, per chunk; 0: not mapped
  mutable size_t slots_mapped_bytes_ = 0;
  mutable bool slots_map_failed_ = false;
  uint64_t last_unmap_sweep_ns_ = 0;
  size_t ring_map_len_ = 0;
  const uint32_t* hwm_ = nullptr;  // fp_slots_hwm in the mmap-ed .bss
  void* bss_map_ = nullptr;
  size_t bss_map_len_ = 0;
  uint64_t* dirty_ = nullptr;
  size_t dirty_map_len_ = 0;
  uint32_t dirty_words_per_cpu_ = 0;
  int ncpus_ = 0;
  std::vector<uint64_t> dirty_acc_;
  std::vector<uint32_t> changed_, retry_;
  // Slots copied because they were marked, with when: the probe marks a slot
  // before it writes, so a copy may miss the write in flight; each is copied
  // once more at a refresh at least kRecheckAfterNs later (see refresh()).
  struct Recheck {
    uint32_t slot;
    uint64_t copied_ns;
  };
  std::vector<Recheck> recheck_, recheck_next_;
  // What refresh() returns: one copy per changed slot (no copy of every
  // slot is kept: 544 B x 10,000 processes was 5.4 MB), and per slot the
  // slot_digest() of the copy last returned, which the recheck compares with.
  std::vector<fp_proc> copies_;
  std::vector<uint64_t> digests_;
  uint64_t refreshed_at_ns_ = 0;
  uint32_t max_procs_ = 0;
  uint64_t attached_at_ns_ = 0;
  std::vector<HookStatus> hooks_;
  EventBatch* sink_ = nullptr;  // valid only inside drain/poll
  uint64_t malformed_ = 0;
};

uint64_t monotonic_now_ns();

}  // namespace fp
