// Which attach mode each of the probe's hooks gets on this kernel, and what
// that leaves unavailable. A pure function of what the kernel offers (the
// loader gathers it: probe/loader/kernel.cpp) and of the options, so that
// every kernel's combination is unit-tested without that kernel.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fp {

// NotNeeded: the kernel counts what the hook would (sched_wakeup when
// sched_info gives the run-queue waits): not loaded, nothing missing.
enum class AttachMode { TpBtf, RawTp, Tracepoint, Unavailable, NotNeeded };
const char* attach_mode_name(AttachMode m);

struct HookStatus {
  std::string name;        // tracepoint name, e.g. "sched_switch"
  std::string feeds;       // what it counts, e.g. "cpu_ns, runq_wait, nvcsw, nivcsw, dstate"
  bool required = false;
  AttachMode mode = AttachMode::Unavailable;
  std::string reason;      // why it is unavailable
};

// One hardware fault source (bpf/hw.bpf.c) and whether this kernel has it.
struct HwSourceStatus {
  std::string name;         // "mce", "memory", "pcie", "disk", "thermal", "thermal_trip"
  std::string tracepoint;   // "mce:mce_record"
  std::string fault_class;  // "hw_mce"
  bool available = false;
  std::string mode;         // attach mode, "unavailable"
  std::string reason;       // why not (or how, for a fallback)
};

// Every tracepoint the probe uses. Pairs are bound twice in bpf/ (btf_NAME
// and raw_NAME); exactly one of each pair is loaded.
struct HookSpec {
  const char* name;
  const char* feeds;
  bool required;
  bool classic;  // a classic tracepoint program named tp_NAME (no pair)
  const char* category;
  const char* hw_source = nullptr;  // a hardware fault source (bpf/hw.bpf.c): its name in status
};
std::span<const HookSpec> hook_specs();
// Optional hooks that only newer kernels have (kfree_skb with a reason:
// v5.17; error_report_end: v5.14): off before load where tracefs does not list them, so status says
// why instead of a failed attach, and logged as info.
bool newer_hook(std::string_view name);
const HookSpec* find_hook(std::string_view name);

// The BPF program that runs `hook` in `mode`: "btf_NAME", "raw_NAME",
// "tp_NAME"; "" when nothing runs (Unavailable, NotNeeded).
std::string program_name(std::string_view hook, AttachMode mode);

// What the running kernel offers the probe, as the loader found it.
struct KernelOffer {
  // The mounted tracefs ("" when none: then nothing can be told from it, and
  // the BTF and the attach decide).
  std::string tracefs;
  // The tracepoints tracefs lists, as "category/name".
  std::set<std::string, std::less<>> listed;
  // The hooks whose tracepoint the kernel's BTF types: the btf_trace_NAME
  // typedef (tp_btf can attach) or, for a classic hook, trace_event_raw_NAME.
  std::set<std::string, std::less<>> typed;
  // The kernel keeps sched_info (run_delay, pcount) for every task.
  bool sched_info = false;
  // perf-event programs (the per-CPU clock tick) may use BPF task storage.
  bool perf_event_task_storage = false;
  // The kernel keeps per-task IO accounting (task->ioac: read_bytes,
  // write_bytes, cancelled_write_bytes; CONFIG_TASK_IO_ACCOUNTING).
  bool task_io = false;
  // The BPF task iterator (iter/task, 5.8+): the seeding pass (probe/seed.h).
  bool task_iter = false;
  // The BPF task-file iterator (iter/task_file, 5.8+) with bpf_sock_from_file
  // (5.11+): the socket-owner resolver (probe/net_resolve.h).
  bool task_file_iter = false;
  // A task's run queue and queueing stamp are readable (cfs_rq::rq, i.e.
  // CONFIG_FAIR_GROUP_SCHED, and sched_info::last_queued): run-queue blame.
  bool runq_rq = false;
  // skb:kfree_skb passes the drop reason (v5.17+: enum skb_drop_reason).
  bool kfree_skb_reason = false;
};

// The options that steer the choice (see ProbeOptions).
struct AttachChoices {
  bool force_raw_tp = false;
  bool runq_from_wakeups = false;
  uint32_t cpu_tick_ms = 50;
  bool io_from_submitter = false;
  bool runq_blame = true;
  // Hooks to bind raw_tp even where tp_btf works (tests: BPF_PROG_TEST_RUN
  // runs raw_tp programs, not tp_btf ones), leaving the others as chosen.
  std::set<std::string, std::less<>> raw_tp_hooks;
};

struct AttachPlan {
  // One per hook_specs() entry, in that order: the mode to load and attach
  // (attaching may still fail: the loader then makes it Unavailable).
  std::vector<HookStatus> hooks;
  bool runq_sched_info = false;         // run-queue waits from sched_info: no wakeup hooks
  bool thread_ts = false;               // per-thread state in task storage, else the tid hash
  bool disk_err_from_complete = false;  // no block_rq_error: block_rq_complete reports failures
  bool task_io = false;                 // IO bytes from task IO accounting, else the submitter's
  bool runq_blame = false;              // run-queue waits charged per CPU to who ran meanwhile
  std::string runq_blame_reason;        // why not, when not
};

AttachPlan plan_attach(const KernelOffer& kernel, const AttachChoices& choices);

// Counters whose hooks are unavailable (the hardware sources are reported
// by hardware_sources(), a missing block_io_start by nothing: insert/issue serve).
std::vector<std::string> unavailable_counters(const std::vector<HookStatus>& hooks);
// The hardware fault sources, available or not, with the reason.
std::vector<HwSourceStatus> hardware_sources(const std::vector<HookStatus>& hooks);

}  // namespace fp
