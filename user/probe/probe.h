// The kernel probe: loads the BPF programs, reads the per-process counters
// (an mmap-ed array, no syscalls per process) and drains the event ring buffer.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultprobe/abi.h"
#include "probe/sample.h"
#include "util/result.h"

struct faultprobe;  // the bpftool skeleton
struct bpf_link;
struct ring_buffer;

namespace fp {

struct ProbeOptions {
  uint32_t max_procs = FP_DEFAULT_MAX_PROCS;
  uint32_t max_threads = FP_DEFAULT_MAX_THREADS;
  uint32_t max_inflight_io = FP_DEFAULT_MAX_INFLIGHT_IO;
  uint32_t ringbuf_bytes = FP_DEFAULT_RINGBUF_BYTES;  // power of two, >= page size
  // Use raw_tp even where tp_btf is available (to exercise the fallback).
  bool force_raw_tp = false;
  // How often each CPU closes its running task's on-CPU interval, so that a
  // task that never switches out still shows CPU time. 0 disables it.
  uint32_t cpu_tick_ms = 50;
};

enum class AttachMode { TpBtf, RawTp, Tracepoint, Unavailable };
const char* attach_mode_name(AttachMode m);

struct HookStatus {
  std::string name;        // tracepoint name, e.g. "sched_switch"
  std::string feeds;       // what it counts, e.g. "cpu_ns, runq_wait, nvcsw, nivcsw, dstate"
  bool required = false;
  AttachMode mode = AttachMode::Unavailable;
  std::string reason;      // why it is unavailable
};

using DropCounts = std::array<uint64_t, FP_DROP_NR>;

// Checks what the probe needs before trying to load it: privileges and BTF.
// The error says what is missing and what to do.
Result<void> check_probe_prerequisites();

class Probe {
 public:
  // open -> size maps -> choose attach modes -> load -> fill free slots -> attach.
  static Result<std::unique_ptr<Probe>> start(const ProbeOptions& opts = {});
  ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  // Incremental read, for the sampling loop: copies only the slots the probe
  // touched since the previous refresh into the mirror and returns their
  // indexes (a freed slot shows as tgid 0). No syscalls; idle processes cost
  // nothing.
  const std::vector<uint32_t>& refresh();
  // The mirror, indexed by slot; entries with tgid 0 are free. Entries never
  // move for the life of the probe (stable addresses).
  const std::vector<fp_proc>& slots() const { return mirror_; }
  // CLOCK_MONOTONIC when the last refresh began.
  uint64_t refreshed_at_ns() const { return refreshed_at_ns_; }

  // Full copy of every live process (refresh, then copy the mirror's live entries).
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
  // Events whose size or type did not match this build's ABI.
  uint64_t malformed_events() const { return malformed_; }

  DropCounts drops() const;
  const std::vector<HookStatus>& hooks() const { return hooks_; }
  // Whether the per-CPU clock tick is attached (see ProbeOptions::cpu_tick_ms).
  bool cpu_tick_attached() const { return cpu_tick_; }
  // Counters whose hooks could not be attached on this kernel.
  std::vector<std::string> unavailable_counters() const;

  // Map occupancy, for status and leak checks (these iterate the maps: not per sample).
  size_t proc_index_entries() const;
  size_t thread_entries() const;
  size_t inflight_io_entries() const;
  uint32_t slots_high_water() const;
  // Whether the probe holds a slot for this tgid right now (one map lookup).
  bool indexed(uint32_t tgid) const;
  uint32_t max_procs() const { return max_procs_; }
  uint64_t attached_at_ns() const { return attached_at_ns_; }

 private:
  Probe() = default;
  Result<void> init(const ProbeOptions& opts);
  void attach_cpu_tick(uint32_t period_ms);
  static int on_event(void* ctx, void* data, size_t size);

  struct SkelDeleter {
    void operator()(struct faultprobe* s) const;
  };
  std::unique_ptr<struct faultprobe, SkelDeleter> skel_;
  std::vector<struct bpf_link*> links_;
  std::vector<int> perf_fds_;
  bool cpu_tick_ = false;
  struct ring_buffer* rb_ = nullptr;
  bool copy_slot(uint32_t slot, fp_proc& dst) const;
  const fp_proc* slots_ = nullptr;
  size_t slots_map_len_ = 0;
  uint64_t* dirty_ = nullptr;
  size_t dirty_map_len_ = 0;
  uint32_t dirty_words_per_cpu_ = 0;
  int ncpus_ = 0;
  std::vector<uint64_t> dirty_acc_;
  std::vector<uint32_t> changed_, retry_;
  std::vector<fp_proc> mirror_;
  uint64_t refreshed_at_ns_ = 0;
  uint32_t max_procs_ = 0;
  uint64_t attached_at_ns_ = 0;
  std::vector<HookStatus> hooks_;
  EventBatch* sink_ = nullptr;  // valid only inside drain/poll
  uint64_t malformed_ = 0;
};

uint64_t monotonic_now_ns();

}  // namespace fp
