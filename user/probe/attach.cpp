#include "probe/attach.h"

#include <algorithm>
#include <initializer_list>

namespace fp {

const char* attach_mode_name(AttachMode m) {
  switch (m) {
    case AttachMode::TpBtf: return "tp_btf";
    case AttachMode::RawTp: return "raw_tp";
    case AttachMode::Tracepoint: return "tracepoint";
    case AttachMode::Unavailable: return "unavailable";
    case AttachMode::NotNeeded: return "not_needed";
  }
  return "?";
}

namespace {

constexpr HookSpec kHooks[] = {
    {"sched_switch", "cpu_ns, runq_wait, nvcsw, nivcsw, dstate, page_faults, rss_bytes", true, false, "sched"},
    {"sched_wakeup", "runq_wait, dstate", true, false, "sched"},
    {"sched_wakeup_new", "runq_wait", true, false, "sched"},
    {"sched_process_fork", "forks, threads", true, false, "sched"},
    {"sched_process_exec", "execs, comm", true, false, "sched"},
    {"sched_process_exit", "exit events", true, false, "sched"},
    {"sched_process_hang", "hang events", false, false, "sched"},
    {"block_io_start", "io submitter (v6.5+)", false, false, "block"},
    {"block_rq_insert", "io submitter", false, false, "block"},
    {"block_rq_issue", "io submitter", false, false, "block"},
    {"block_rq_complete", "io bytes, requests, latency, errors", false, false, "block"},
    {"block_bio_queue", "io submitter on bio-based devices (device-mapper)", false, false, "block"},
    {"block_bio_complete", "io requests, latency, errors on bio-based devices", false, false, "block"},
    {"mm_vmscan_direct_reclaim_begin", "reclaim", false, false, "vmscan"},
    {"mm_vmscan_direct_reclaim_end", "reclaim", false, false, "vmscan"},
    {"signal_generate", "fatal_signals, signal events", false, false, "signal"},
    {"mark_victim", "oom_victim, oom events", false, true, "oom"},
    {"balance_dirty_pages", "dirty_throttle_ns, dirty_throttles", false, true, "writeback"},
    // Network (bpf/net.bpf.c): events charged to the socket's owner, learned where it runs.
    {"inet_sock_set_state", "net_connects, net_connect_failures, socket owners (connect)", false, false, "sock"},
    {"tcp_retransmit_skb", "net_retransmits", false, false, "tcp"},
    {"tcp_send_reset", "net_resets_sent", false, false, "tcp"},
    {"tcp_receive_reset", "net_resets_received", false, false, "tcp"},
    {"sock_rcvqueue_full", "net_rcvq_overflows (raw, ICMP)", false, false, "sock"},
    {"udp_fail_queue_rcv_skb", "net_rcvq_overflows (UDP)", false, false, "udp"},
    {"tcp_rcv_space_adjust", "socket owners (readers)", false, false, "tcp"},
    {"kfree_skb", "net_drops (packets dropped with a reason, v5.17+)", false, false, "skb"},
    // The kernel's own error reports (bpf/kerror.bpf.c; v5.14+): KFENCE, KASAN, WARN.
    {"error_report_end", "kernel_errors, kernel error events (KFENCE/KASAN/WARN, v5.14+)", false, false,
     "error_report"},
    // Hardware sources: each optional, present on the machines that have the hardware and driver.
    {"mce_record", "hw_mce", false, true, "mce", "mce"},
    {"mc_event", "hw_memory_error", false, true, "ras", "memory"},
    {"aer_event", "hw_pcie_error", false, true, "ras", "pcie"},
    {"block_rq_error", "hw_disk_error", false, false, "block", "disk"},
    {"thermal_temperature", "hw_thermal", false, true, "thermal", "thermal"},
    {"thermal_zone_trip", "hw_thermal", false, true, "thermal", "thermal_trip"},
};

// The hooks that keep per-thread state: task storage needs every one of
// them tp_btf (raw_tp arguments cannot key it) or not loaded.
constexpr const char* kThreadHooks[] = {"sched_switch",       "sched_wakeup",
                                        "sched_wakeup_new",   "sched_process_exit",
                                        "sched_process_hang", "mm_vmscan_direct_reclaim_begin",
                                        "mm_vmscan_direct_reclaim_end"};

// Whether tracefs lists the tracepoint. Without tracefs mounted nothing can
// be told: the BTF check and the attach decide.
bool listed(const KernelOffer& k, std::string_view category, std::string_view name) {
  if (k.tracefs.empty()) return true;
  return k.listed.contains(std::string(category) + "/" + std::string(name));
}

const HookStatus* status_of(const std::vector<HookStatus>& hooks, std::string_view name) {
  for (const auto& st : hooks)
    if (st.name == name) return &st;
  return nullptr;
}

// A hook whose counters come from elsewhere: neither twin is loaded.
void not_needed(std::vector<HookStatus>& hooks, std::initializer_list<std::string_view> names, const char* reason) {
  for (auto& st : hooks) {
    if (std::find(names.begin(), names.end(), st.name) == names.end()) continue;
    st.mode = AttachMode::NotNeeded;
    st.reason = reason;
  }
}

}  // namespace

std::span<const HookSpec> hook_specs() { return kHooks; }

bool newer_hook(std::string_view name) {
  return name == "kfree_skb" || name == "error_report_end";
}

const HookSpec* find_hook(std::string_view name) {
  for (const auto& h : kHooks)
    if (name == h.name) return &h;
  return nullptr;
}

std::string program_name(std::string_view hook, AttachMode mode) {
  const char* prefix = mode == AttachMode::TpBtf        ? "btf_"
                       : mode == AttachMode::RawTp      ? "raw_"
                       : mode == AttachMode::Tracepoint ? "tp_"
                                                        : nullptr;
  return prefix ? prefix + std::string(hook) : std::string();
}

AttachPlan plan_attach(const KernelOffer& k, const AttachChoices& c) {
  AttachPlan plan;
  // One mode per hook: tp_btf where the kernel's BTF has the tracepoint's
  // type, raw_tp otherwise.
  for (const auto& h : kHooks) {
    HookStatus st{h.name, h.feeds, h.required, AttachMode::Unavailable, {}};
    // A hardware source whose tracepoint tracefs does not list is absent on
    // this kernel (or machine): off before load, so the probe never fails for it.
    if ((h.hw_source || newer_hook(h.name)) && !listed(k, h.category, h.name)) {
      st.reason = "the kernel has no " + std::string(h.category) + ":" + h.name + " tracepoint (no " + k.tracefs +
                  "/events/" + h.category + "/" + h.name + ")";
    } else if (std::string_view(h.name) == "kfree_skb" && !k.kfree_skb_reason) {
      // Older kernels have the tracepoint without a reason: nothing to count, and
      // the programs read an argument the kernel does not pass.
      st.reason = "the kernel's skb:kfree_skb has no drop reason (v5.17+)";
    } else if (h.classic) {
      if (k.typed.contains(h.name))
        st.mode = AttachMode::Tracepoint;
      else
        st.reason = "the kernel has no " + std::string(h.category) + ":" + h.name + " tracepoint";
    } else {
      // raw_tp needs no BTF for the tracepoint; whether it exists shows at attach.
      const bool raw = c.force_raw_tp || c.raw_tp_hooks.contains(h.name);
      st.mode = k.typed.contains(h.name) && !raw ? AttachMode::TpBtf : AttachMode::RawTp;
    }
    plan.hooks.push_back(std::move(st));
  }

  // Run-queue waits from the kernel's sched_info where it keeps them: the
  // wakeup hooks are then not loaded at all (one program fewer on the
  // hottest path after sched_switch).
  plan.runq_sched_info = !c.runq_from_wakeups && k.sched_info;
  plan.task_io = !c.io_from_submitter && k.task_io;
  // Run-queue blame (bpf/runq_blame.bpf.h) times waits with sched_info's
  // stamps and finds a task's run queue through its CFS entity.
  if (!c.runq_blame)
    plan.runq_blame_reason = "turned off";
  else if (!plan.runq_sched_info)
    plan.runq_blame_reason = "the kernel keeps no sched_info stamps to time waits with";
  else if (!k.runq_rq)
    plan.runq_blame_reason = "the kernel cannot tell a task's run queue (no CONFIG_FAIR_GROUP_SCHED)";
  else
    plan.runq_blame = true;
  if (plan.runq_sched_info)
    not_needed(plan.hooks, {"sched_wakeup", "sched_wakeup_new"},
               "run-queue waits come from the kernel's sched_info (run_delay, pcount)");

  // Where block_io_start exists (v6.5+) it sees every request first:
  // block_rq_insert/issue would only look their request up to find it there
  // (two hash operations per IO). It exists when typed in the kernel's BTF,
  // or listed by a mounted tracefs.
  const HookStatus* io_start = status_of(plan.hooks, "block_io_start");
  if (io_start && (io_start->mode == AttachMode::TpBtf ||
                   (io_start->mode == AttachMode::RawTp && !k.tracefs.empty() && listed(k, "block", "block_io_start"))))
    not_needed(plan.hooks, {"block_rq_insert", "block_rq_issue"}, "block_io_start sees every request");

  // Without block_rq_error, failed requests are reported from block_rq_complete (bpf/hw.bpf.h).
  const HookStatus* rq_error = status_of(plan.hooks, "block_rq_error");
  plan.disk_err_from_complete = rq_error && rq_error->mode == AttachMode::Unavailable;

  // Where per-thread state lives: task storage (no hash lookup per switch,
  // freed with the task, no preallocated table) when every hook that keeps
  // thread state is tp_btf and the kernel lets the clock tick's perf-event
  // program use it too; the tid hash otherwise.
  plan.thread_ts = std::all_of(std::begin(kThreadHooks), std::end(kThreadHooks), [&](const char* name) {
    const HookStatus* st = status_of(plan.hooks, name);
    return !st || st->mode == AttachMode::TpBtf || st->mode == AttachMode::NotNeeded;
  });
  if (plan.thread_ts && c.cpu_tick_ms != 0 && !k.perf_event_task_storage) plan.thread_ts = false;
  return plan;
}

std::vector<std::string> unavailable_counters(const std::vector<HookStatus>& hooks) {
  std::vector<std::string> out;
  for (const auto& st : hooks) {
    const HookSpec* spec = find_hook(st.name);
    if (spec && spec->hw_source) continue;  // hardware_sources() reports those
    if (st.mode == AttachMode::Unavailable && st.name != "block_io_start") out.push_back(st.feeds);
  }
  return out;
}

std::vector<HwSourceStatus> hardware_sources(const std::vector<HookStatus>& hooks) {
  std::vector<HwSourceStatus> out;
  for (const auto& h : kHooks) {
    if (!h.hw_source) continue;
    const HookStatus* st = status_of(hooks, h.name);
    HwSourceStatus s;
    s.name = h.hw_source;
    s.tracepoint = std::string(h.category) + ":" + h.name;
    s.fault_class = h.feeds;
    s.available = st && st->mode != AttachMode::Unavailable;
    s.mode = st ? attach_mode_name(st->mode) : "unavailable";
    s.reason = st ? st->reason : "not loaded";
    // Older kernels: failed requests come from block_rq_complete's error (bpf/hw.bpf.h).
    if (!s.available && s.name == "disk") {
      const HookStatus* complete = status_of(hooks, "block_rq_complete");
      if (complete && complete->mode != AttachMode::Unavailable) {
        s.available = true;
        s.tracepoint = "block:block_rq_complete";
        s.mode = attach_mode_name(complete->mode);
        s.reason = "no block_rq_error: failed requests taken from block_rq_complete";
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace fp
