#include "probe/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string_view>
#include <type_traits>

#include <spdlog/spdlog.h>

#include "faultprobe.skel.h"
#include "probe/hw_decode.h"
#include "probe/pin.h"

namespace fp {

uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

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
    // Hardware sources: each optional, present on the machines that have the hardware and driver.
    {"mce_record", "hw_mce", false, true, "mce", "mce"},
    {"mc_event", "hw_memory_error", false, true, "ras", "memory"},
    {"aer_event", "hw_pcie_error", false, true, "ras", "pcie"},
    {"block_rq_error", "hw_disk_error", false, false, "block", "disk"},
    {"thermal_temperature", "hw_thermal", false, true, "thermal", "thermal"},
    {"thermal_zone_trip", "hw_thermal", false, true, "thermal", "thermal_trip"},
};

constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;

// Effective capabilities from /proc/self/status (no libcap needed).
bool has_capability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t bits = std::stoull(line.substr(7), nullptr, 16);
    return (bits >> cap) & 1;
  }
  return false;
}

std::string tracefs_dir() {
  for (const char* d : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    std::error_code ec;
    if (std::filesystem::exists(std::string(d) + "/events", ec)) return d;
  }
  return {};
}

// Whether tracefs lists the tracepoint. Without tracefs mounted nothing can
// be told: the BTF check and the attach decide.
bool tracepoint_listed(const std::string& tracefs, const char* category, const char* name) {
  if (tracefs.empty()) return true;
  std::error_code ec;
  return std::filesystem::exists(tracefs + "/events/" + category + "/" + name, ec);
}

// Whether the kernel's BTF has struct `type` with a member `member`.
bool struct_has(const struct btf* vmlinux, const char* type, std::string_view member) {
  int id = btf__find_by_name_kind(vmlinux, type, BTF_KIND_STRUCT);
  if (id < 0) return false;
  const struct btf_type* t = btf__type_by_id(vmlinux, id);
  const struct btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m) {
    const char* name = btf__name_by_offset(vmlinux, m->name_off);
    if (name && member == name) return true;
  }
  return false;
}

// Whether the kernel keeps sched_info (run_delay, pcount) for every task:
// the fields are in its BTF (CONFIG_SCHED_INFO) and this process's own
// counters moved (kernels before 5.14 only counted with schedstats or delay
// accounting switched on).
bool kernel_counts_runq_waits(const struct btf* vmlinux) {
  if (!struct_has(vmlinux, "sched_info", "run_delay") || !struct_has(vmlinux, "sched_info", "pcount")) return false;
  std::ifstream in("/proc/self/schedstat");
  uint64_t run_ns = 0, delay_ns = 0, pcount = 0;
  return bool(in >> run_ns >> delay_ns >> pcount) && pcount > 0;
}

}  // namespace

uint32_t default_max_procs() {
  uint32_t alive = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      alive++;
  }
  uint64_t pid_max = 32768;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  uint64_t want = std::max<uint64_t>(16384, 2ull * alive);
  return uint32_t(std::min<uint64_t>({want, std::max<uint64_t>(pid_max, 1024), FP_DEFAULT_MAX_PROCS * 32ull}));
}

Result<void> check_probe_prerequisites() {
  if (geteuid() != 0) {
    bool caps = has_capability(kCapSysAdmin) ||
                (has_capability(kCapBpf) && has_capability(kCapPerfmon));
    if (!caps)
      return Error{EPERM,
                   "faultprobe needs root (or CAP_BPF and CAP_PERFMON) to load its kernel probe: "
                   "run it as root, e.g. with sudo"};
  }
  std::error_code ec;
  if (!std::filesystem::exists("/sys/kernel/btf/vmlinux", ec))
    return Error{ENOENT,
                 "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): faultprobe needs a "
                 "kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, RHEL >= 8.2 and "
                 "Fedora kernels have it)"};
  return {};
}

namespace {

using Bss = std::remove_pointer_t<decltype(faultprobe::bss)>;

// What a pinned probe must match to be taken over: the BPF object itself
// and the structs this loader reads out of it.
uint64_t probe_identity() {
  size_t sz = 0;
  const void* elf = faultprobe::elf_bytes(&sz);
  const uint32_t abi[] = {uint32_t(sizeof(fp_proc)),         uint32_t(sizeof(fp_exit_event)),
                          uint32_t(sizeof(fp_signal_event)), uint32_t(sizeof(fp_oom_event)),
                          uint32_t(sizeof(fp_hang_event)),   uint32_t(sizeof(Bss)),
                          uint32_t(sizeof(fp_runq_cpu)),
                          FP_HIST_SLOTS,                     FP_DROP_NR,
                          pin::kMetaFormat};
  return pin::fnv1a(abi, sizeof(abi), pin::fnv1a(elf, sz));
}

const HookSpec* find_hook(const std::string& name) {
  for (const auto& h : kHooks)
    if (name == h.name) return &h;
  return nullptr;
}

int perf_event_open(perf_event_attr& attr, int cpu) {
  return int(syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
}

void copy_str(char* dst, size_t cap, const std::string& s) {
  size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

}  // namespace

void Probe::SkelDeleter::operator()(struct faultprobe* s) const { faultprobe::destroy(s); }

Result<std::unique_ptr<Probe>> Probe::start(const ProbeOptions& in) {
  if (auto pre = check_probe_prerequisites(); !pre) return pre.error();
  if (in.max_threads == 0 || in.max_inflight_io == 0)
    return Error{EINVAL, "probe map sizes must be positive"};
  long page = sysconf(_SC_PAGESIZE);
  if (in.ringbuf_bytes < uint32_t(page) || (in.ringbuf_bytes & (in.ringbuf_bytes - 1)))
    return Error{EINVAL, "ring buffer size must be a power of two of at least one page"};

  ProbeOptions opts = in;
  if (!opts.pin_dir.empty()) {
    if (auto fs = pin::check_bpffs(opts.pin_dir); !fs) {
      // Monitoring without pins beats not monitoring: say what is lost.
      spdlog::warn("not pinning the probe: {}; its counters will not survive a restart", fs.error().message);
      opts.pin_dir.clear();
    } else if (pin::exists(opts.pin_dir)) {
      std::unique_ptr<Probe> p(new Probe());
      auto r = p->take_over(opts);
      if (r) return p;
      p.reset();
      spdlog::warn("cannot take over the probe pinned in {}: {}; removing it and loading a fresh probe "
                   "(counters restart from zero)",
                   opts.pin_dir, r.error().message);
      if (auto rm = pin::remove_dir(opts.pin_dir); !rm)
        return Error{rm.error().code, "cannot remove the stale probe pins: " + rm.error().message};
    }
  }
  std::unique_ptr<Probe> p(new Probe());
  if (auto r = p->load(opts); !r) return r.error();
  if (!opts.pin_dir.empty()) {
    if (auto r = p->pin(opts); !r) {
      spdlog::warn("cannot pin the probe ({}): running unpinned, its counters will not survive a restart",
                   r.error().message);
      if (auto rm = pin::remove_dir(opts.pin_dir); !rm) spdlog::warn("{}", rm.error().message);
    }
  }
  return p;
}

Result<void> Probe::remove_pins(const std::string& pin_dir) { return pin::remove_dir(pin_dir); }

Probe::~Probe() {
  if (rb_) ring_buffer__free(rb_);
  if (slots_) munmap(const_cast<fp_proc*>(slots_), slots_map_len_);
  if (dirty_) munmap(dirty_, dirty_map_len_);
  if (bss_map_) munmap(bss_map_, bss_map_len_);
  // Closing a link detaches its program unless the link is pinned: a pinned
  // probe keeps running for the next daemon.
  for (auto& l : links_) close(l.second);
  for (int fd : perf_fds_) close(fd);
  for (int fd : owned_fds_) close(fd);
}  // then skel_ closes its maps and programs (pinned ones live on)

Result<void> Probe::load(const ProbeOptions& opts) {
  // 1. open
  skel_.reset(faultprobe::open());
  if (!skel_) return Error::from_errno(errno, "cannot open the BPF probe object");
  bpf_object* obj = skel_->obj;

  // 2. configure: map sizes
  max_procs_ = opts.max_procs ? opts.max_procs : default_max_procs();
  bpf_map__set_max_entries(skel_->maps.proc_slots, max_procs_);
  bpf_map__set_max_entries(skel_->maps.proc_index, max_procs_);
  bpf_map__set_max_entries(skel_->maps.free_slots, max_procs_);
  bpf_map__set_max_entries(skel_->maps.inflight_io, opts.max_inflight_io);
  bpf_map__set_max_entries(skel_->maps.events, opts.ringbuf_bytes);
  skel_->rodata->fp_ringbuf_wake_bytes = opts.ringbuf_bytes / 4;
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) return Error::from_errno(-ncpus_, "cannot count the possible CPUs");
  dirty_words_per_cpu_ = (max_procs_ + 63) / 64;
  bpf_map__set_max_entries(skel_->maps.dirty, dirty_words_per_cpu_ * uint32_t(ncpus_));
  skel_->rodata->fp_dirty_words_per_cpu = dirty_words_per_cpu_;

  // 3. choose one attach mode per hook (tp_btf where the kernel's BTF has
  //    the tracepoint's type, raw_tp otherwise) and turn the twin off.
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return Error::from_errno(errno, "cannot read the kernel's BTF");
  const std::string events_dir = tracefs_dir();
  hooks_.clear();
  for (const auto& h : kHooks) {
    HookStatus st{h.name, h.feeds, h.required, AttachMode::Unavailable, {}};
    // A hardware source whose tracepoint tracefs does not list is absent on
    // this kernel (or machine): off before load, so the probe never fails for it.
    if (h.hw_source && !tracepoint_listed(events_dir, h.category, h.name)) {
      for (const char* prefix : {"tp_", "btf_", "raw_"})
        if (bpf_program* p = bpf_object__find_program_by_name(obj, (std::string(prefix) + h.name).c_str()))
          bpf_program__set_autoload(p, false);
      st.reason = "the kernel has no " + std::string(h.category) + ":" + h.name + " tracepoint (no " +
                  events_dir + "/events/" + h.category + "/" + h.name + ")";
      hooks_.push_back(std::move(st));
      continue;
    }
    if (h.classic) {
      bpf_program* prog = bpf_object__find_program_by_name(obj, (std::string("tp_") + h.name).c_str());
      std::string raw_struct = std::string("trace_event_raw_") + h.name;
      if (!prog) return Error{ENOENT, std::string("probe object lacks program tp_") + h.name};
      if (btf__find_by_name_kind(vmlinux, raw_struct.c_str(), BTF_KIND_STRUCT) < 0) {
        bpf_program__set_autoload(prog, false);
        st.reason = "the kernel has no " + std::string(h.category) + ":" + h.name + " tracepoint";
      } else {
        st.mode = AttachMode::Tracepoint;
      }
      hooks_.push_back(std::move(st));
      continue;
    }
    bpf_program* btf_prog = bpf_object__find_program_by_name(obj, (std::string("btf_") + h.name).c_str());
    bpf_program* raw_prog = bpf_object__find_program_by_name(obj, (std::string("raw_") + h.name).c_str());
    if (!btf_prog || !raw_prog) return Error{ENOENT, std::string("probe object lacks hook ") + h.name};
    bool typed = btf__find_by_name_kind(vmlinux, (std::string("btf_trace_") + h.name).c_str(),
                                        BTF_KIND_TYPEDEF) >= 0;
    if (typed && !opts.force_raw_tp) {
      bpf_program__set_autoload(raw_prog, false);
      st.mode = AttachMode::TpBtf;
    } else {
      // raw_tp needs no BTF for the tracepoint; whether it exists shows at attach.
      bpf_program__set_autoload(btf_prog, false);
      st.mode = AttachMode::RawTp;
    }
    hooks_.push_back(std::move(st));
  }
  // 3a. run-queue waits from the kernel's sched_info where it keeps them:
  //     the wakeup hooks are then not loaded at all (one program fewer on
  //     the hottest path after sched_switch).
  runq_sched_info_ = !opts.runq_from_wakeups && kernel_counts_runq_waits(vmlinux);
  skel_->rodata->fp_runq_sched_info = runq_sched_info_;
  // 3a'. run-queue blame (bpf/runq_blame.bpf.h) reads sched_info's stamps and
  //      finds a task's run queue through its CFS entity (cfs_rq::rq).
  runq_blame_ = false;
  if (!opts.runq_blame)
    runq_blame_reason_ = "turned off";
  else if (!runq_sched_info_)
    runq_blame_reason_ = "the kernel keeps no sched_info stamps to time waits with";
  else if (!struct_has(vmlinux, "cfs_rq", "rq") || !struct_has(vmlinux, "sched_info", "last_queued"))
    runq_blame_reason_ = "the kernel cannot tell a task's run queue (no CONFIG_FAIR_GROUP_SCHED)";
  else
    runq_blame_ = true;
  btf__free(vmlinux);
  skel_->rodata->fp_runq_blame = runq_blame_;
  // A hook whose counters come from elsewhere: neither twin is loaded.
  auto not_needed = [&](std::initializer_list<std::string_view> names, const char* reason) {
    for (auto& st : hooks_) {
      if (std::find(names.begin(), names.end(), st.name) == names.end()) continue;
      for (const char* prefix : {"btf_", "raw_"})
        if (bpf_program* p = bpf_object__find_program_by_name(obj, (prefix + st.name).c_str()))
          bpf_program__set_autoload(p, false);
      st.mode = AttachMode::NotNeeded;
      st.reason = reason;
    }
  };
  if (runq_sched_info_)
    not_needed({"sched_wakeup", "sched_wakeup_new"},
               "run-queue waits come from the kernel's sched_info (run_delay, pcount)");
  // 3b'. where block_io_start exists (v6.5+) it sees every request first:
  //     block_rq_insert/issue would only look their request up to find it
  //     there (two hash operations per IO).
  bool io_start = false;
  for (const auto& st : hooks_)
    if (st.name == "block_io_start")  // typed in the kernel's BTF, or listed by a mounted tracefs
      io_start = st.mode == AttachMode::TpBtf ||
                 (st.mode == AttachMode::RawTp && !events_dir.empty() &&
                  tracepoint_listed(events_dir, "block", "block_io_start"));
  if (io_start) not_needed({"block_rq_insert", "block_rq_issue"}, "block_io_start sees every request");
  // Without block_rq_error, failed requests are reported from block_rq_complete (bpf/hw.bpf.h).
  for (const auto& st : hooks_)
    if (st.name == "block_rq_error") skel_->rodata->fp_disk_err_from_complete = st.mode == AttachMode::Unavailable;

  // 3b. where per-thread state lives: task storage (no hash lookup per
  //     switch, freed with the task, no preallocated table) when every hook
  //     that keeps thread state is tp_btf (raw_tp arguments cannot key task
  //     storage) and the kernel lets the clock tick's perf-event program use
  //     it too; the tid hash otherwise.
  thread_ts_ = true;
  for (const auto& st : hooks_) {
    static const char* const kThreadHooks[] = {"sched_switch", "sched_wakeup", "sched_wakeup_new",
                                               "sched_process_exit", "sched_process_hang",
                                               "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end"};
    for (const char* name : kThreadHooks)
      if (st.name == name && st.mode != AttachMode::TpBtf && st.mode != AttachMode::NotNeeded) thread_ts_ = false;
  }
  if (thread_ts_ && opts.cpu_tick_ms != 0 &&
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_PERF_EVENT, BPF_FUNC_task_storage_get, nullptr) != 1)
    thread_ts_ = false;
  skel_->rodata->fp_thread_ts = thread_ts_;
  bpf_map__set_max_entries(skel_->maps.threads, thread_ts_ ? 1 : opts.max_threads);
  bpf_program__set_autoload(thread_ts_ ? skel_->progs.cpu_clock_tick : skel_->progs.cpu_clock_tick_ts, false);
  spdlog::debug("per-thread state in {}", thread_ts_ ? "task storage" : "the tid hash");

  // 4. load
  if (int err = faultprobe::load(skel_.get()); err) {
    return Error::from_errno(-err,
                             "the kernel refused to load the BPF probe (run with -v for the "
                             "verifier's log; kernels older than 5.12 lack the BPF atomics it uses)");
  }
  fds_.proc_slots = bpf_map__fd(skel_->maps.proc_slots);
  fds_.proc_index = bpf_map__fd(skel_->maps.proc_index);
  fds_.free_slots = bpf_map__fd(skel_->maps.free_slots);
  fds_.threads = bpf_map__fd(skel_->maps.threads);
  fds_.inflight_io = bpf_map__fd(skel_->maps.inflight_io);
  fds_.events = bpf_map__fd(skel_->maps.events);
  fds_.drops = bpf_map__fd(skel_->maps.drops);
  fds_.dirty = bpf_map__fd(skel_->maps.dirty);
  fds_.bss = bpf_map__fd(skel_->maps.bss);
  fds_.thread_ts = bpf_map__fd(skel_->maps.thread_ts);
  fds_.runq_cpu = bpf_map__fd(skel_->maps.runq_cpu);

  // 5. free slots: pushed high to low so that pops hand out 0, 1, 2... first.
  for (uint32_t i = max_procs_; i-- > 0;) {
    if (bpf_map_update_elem(fds_.free_slots, nullptr, &i, BPF_ANY))
      return Error::from_errno(errno, "cannot fill the probe's free-slot stack");
  }

  // 6. map the per-process slots, the dirty bitmap and .bss; open the ring buffer
  if (bpf_map__value_size(skel_->maps.proc_slots) != sizeof(fp_proc))
    return Error{EINVAL, "probe object and loader disagree on sizeof(struct fp_proc)"};
  if (auto r = map_views(); !r) return r;

  // 7. attach, hook by hook: an optional hook that fails is reported, not fatal.
  std::string tracefs = tracefs_dir();
  for (auto& st : hooks_) {
    if (st.mode == AttachMode::Unavailable || st.mode == AttachMode::NotNeeded) continue;
    std::string prog_name = (st.mode == AttachMode::TpBtf       ? "btf_"
                             : st.mode == AttachMode::RawTp     ? "raw_"
                                                                : "tp_") +
                            st.name;
    bpf_program* prog = bpf_object__find_program_by_name(obj, prog_name.c_str());
    auto link = prog ? attach_hook(st, bpf_program__fd(prog), tracefs) : Result<int>(Error{ENOENT, "no program"});
    if (!link) {
      st.reason = "cannot attach " + prog_name + ": " + link.error().message;
      if (st.mode == AttachMode::Tracepoint && tracefs.empty())
        st.reason += " (tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing)";
      st.mode = AttachMode::Unavailable;
      continue;
    }
    if (*link >= 0) links_.emplace_back("link_" + st.name, *link);
    spdlog::debug("attached {} as {}", st.name, attach_mode_name(st.mode));
  }
  for (const auto& st : hooks_) {
    if (st.mode != AttachMode::Unavailable) continue;
    if (st.required)
      return Error{ENOENT, "the kernel lacks the " + st.name + " tracepoint, which faultprobe needs (" +
                               st.reason + ")"};
    // A kernel without block_io_start (< v6.5) is served by block_rq_insert/issue.
    if (st.name == "block_io_start") {
      spdlog::debug("{} unavailable, submitters come from block_rq_insert/issue", st.name);
      continue;
    }
    if (const HookSpec* spec = find_hook(st.name); spec && spec->hw_source) {
      spdlog::info("hardware source {} unavailable: {}", st.name, st.reason);
      continue;
    }
    spdlog::warn("{} unavailable: {} not counted ({})", st.name, st.feeds, st.reason);
  }
  attach_cpu_tick(opts.cpu_tick_ms);
  attached_at_ns_ = monotonic_now_ns();
  return {};
}

// Maps the per-process slots read-only, the dirty bitmap read-write (the
// reader swaps it to zero) and .bss for the slot high-water mark; opens the
// ring buffer. The same for a loaded and a taken-over probe.
Result<void> Probe::map_views() {
  long page = sysconf(_SC_PAGESIZE);
  auto round = [&](size_t n) { return (n + size_t(page) - 1) / size_t(page) * size_t(page); };
  dirty_map_len_ = round(sizeof(uint64_t) * dirty_words_per_cpu_ * size_t(ncpus_));
  void* m = mmap(nullptr, dirty_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fds_.dirty, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the probe's dirty-slot bitmap");
  dirty_ = static_cast<uint64_t*>(m);
  bss_map_len_ = round(sizeof(Bss));
  m = mmap(nullptr, bss_map_len_, PROT_READ, MAP_SHARED, fds_.bss, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the probe's .bss");
  bss_map_ = m;
  hwm_ = reinterpret_cast<const uint32_t*>(static_cast<const char*>(m) + offsetof(Bss, fp_slots_hwm));
  // The slot array: reserved as address space, mapped chunk by chunk where
  // slots are read (map_slot), unmapped where they stay idle.
  slots_map_len_ = round(sizeof(fp_proc) * size_t(max_procs_));
  m = mmap(nullptr, slots_map_len_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot reserve address space for the per-process counters");
  slots_ = static_cast<const fp_proc*>(m);
  slot_chunk_bytes_ = std::max<size_t>(kSlotChunkBytes, size_t(page));
  chunk_used_ns_.assign((slots_map_len_ + slot_chunk_bytes_ - 1) / slot_chunk_bytes_, 0);
  slots_mapped_bytes_ = 0;
  // One chunk now: a map the kernel refuses to mmap fails the load, not a tick.
  if (!map_slot(0, monotonic_now_ns())) return Error::from_errno(errno, "cannot mmap the per-process counters");
  dirty_acc_.assign(dirty_words_per_cpu_, 0);
  // Reserved once so that mirror entries never move: the engine keys slots by
  // address. Untouched capacity costs address space, not memory.
  mirror_.reserve(max_procs_);
  rb_ = ring_buffer__new(fds_.events, &Probe::on_event, this, nullptr);
  if (!rb_) return Error::from_errno(errno, "cannot open the probe's ring buffer");
  // libbpf maps the consumer page, and the producer page with the data twice.
  bpf_map_info info{};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fds_.events, &info, &info_len) == 0)
    ring_map_len_ = 2 * size_t(page) + 2 * size_t(info.max_entries);
  return {};
}

Probe::MappedBytes Probe::mapped_bytes() const {
  return {slots_mapped_bytes_, ring_map_len_, dirty_map_len_ + bss_map_len_};
}

// The kernel maps every page of a BPF array when it is mmap-ed, so a map
// mapped whole is all in RSS from the start (8.5 MiB for 16,384 slots, with
// 100 processes tracked), and a mapped page stays in RSS for as long as it
// is mapped. Slots are read only when the probe marks them dirty, so the
// array is mapped in chunks where a dirty slot is read, over the reserved
// range (addresses never move), and a chunk none of whose slots changed for
// kSlotChunkIdleNs is unmapped again: on a host of mostly idle processes
// most of the array is not mapped. Mapping a chunk is one mmap of 4 pages.
bool Probe::map_slot(uint32_t slot, uint64_t now_ns) const {
  size_t first = size_t(slot) * sizeof(fp_proc), last = first + sizeof(fp_proc) - 1;
  char* base = reinterpret_cast<char*>(const_cast<fp_proc*>(slots_));
  for (size_t c = first / slot_chunk_bytes_; c <= last / slot_chunk_bytes_; c++) {
    if (chunk_used_ns_[c] == 0) {
      size_t off = c * slot_chunk_bytes_, len = std::min(slot_chunk_bytes_, slots_map_len_ - off);
      if (mmap(base + off, len, PROT_READ, MAP_SHARED | MAP_FIXED, fds_.proc_slots, off_t(off)) == MAP_FAILED) {
        if (!slots_map_failed_)
          spdlog::error("cannot mmap the probe's slots at offset {}: {}", off, std::strerror(errno));
        slots_map_failed_ = true;
        return false;
      }
      slots_mapped_bytes_ += len;
    }
    chunk_used_ns_[c] = std::max<uint64_t>(now_ns, 1);
  }
  return true;
}

// Once a second: chunks idle for kSlotChunkIdleNs go back to the reservation
// (adjacent ones in one call).
void Probe::unmap_idle_slot_chunks(uint64_t now_ns) {
  if (now_ns - last_unmap_sweep_ns_ < 1'000'000'000ull) return;
  last_unmap_sweep_ns_ = now_ns;
  char* base = reinterpret_cast<char*>(const_cast<fp_proc*>(slots_));
  auto idle = [&](size_t c) { return chunk_used_ns_[c] != 0 && now_ns - chunk_used_ns_[c] >= kSlotChunkIdleNs; };
  for (size_t c = 0; c < chunk_used_ns_.size();) {
    if (!idle(c)) {
      c++;
      continue;
    }
    size_t end = c;
    while (end < chunk_used_ns_.size() && idle(end)) end++;
    size_t off = c * slot_chunk_bytes_, len = std::min(end * slot_chunk_bytes_, slots_map_len_) - off;
    if (mmap(base + off, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      for (size_t i = c; i < end; i++) chunk_used_ns_[i] = 0;
      slots_mapped_bytes_ -= len;
    }
    c = end;
  }
}

// A bpf_link on a perf event (a classic tracepoint or a CPU clock): pinnable,
// and it holds the perf event itself, so `pfd` is closed here. Kernels
// before 5.15 lack perf-event links: the program is then attached with the
// old ioctl, the perf fd is kept, and -1 says there is no link to pin.
static Result<int> link_perf_event(int prog_fd, int pfd, std::vector<int>& perf_fds) {
  int link = bpf_link_create(prog_fd, pfd, BPF_PERF_EVENT, nullptr);
  if (link >= 0) {
    close(pfd);
    return link;
  }
  if (ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog_fd) == 0 && ioctl(pfd, PERF_EVENT_IOC_ENABLE, 0) == 0) {
    perf_fds.push_back(pfd);
    return -1;
  }
  int err = errno;
  close(pfd);
  return Error::from_errno(err, "perf event attach");
}

// Attaches one hook's program; returns the link fd (-1: attached without a link).
Result<int> Probe::attach_hook(const HookStatus& st, int prog_fd, const std::string& tracefs) {
  if (st.mode == AttachMode::TpBtf || st.mode == AttachMode::RawTp) {
    // tp_btf names its tracepoint in the program's BTF; raw_tp by name.
    int fd = bpf_raw_tracepoint_open(st.mode == AttachMode::RawTp ? st.name.c_str() : nullptr, prog_fd);
    if (fd < 0) return Error{errno, std::strerror(errno)};
    return fd;
  }
  const HookSpec* spec = find_hook(st.name);
  std::ifstream id_file(tracefs + "/events/" + (spec ? spec->category : "") + "/" + st.name + "/id");
  uint64_t id = 0;
  if (tracefs.empty() || !(id_file >> id)) return Error{ENOENT, "no tracefs id for the tracepoint"};
  perf_event_attr attr{};
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof(attr);
  attr.config = id;
  attr.sample_period = 1;
  attr.wakeup_events = 1;
  // One event on CPU 0 runs the program for the tracepoint on every CPU.
  int pfd = perf_event_open(attr, 0);
  if (pfd < 0) return Error::from_errno(errno, "perf_event_open");
  return link_perf_event(prog_fd, pfd, perf_fds_);
}

// One software cpu-clock perf event per online CPU runs cpu_clock_tick. Not
// fatal when it fails: CPU time is then counted at context switches only.
void Probe::attach_cpu_tick(uint32_t period_ms) {
  if (period_ms == 0) return;
  int prog_fd = bpf_program__fd(thread_ts_ ? skel_->progs.cpu_clock_tick_ts : skel_->progs.cpu_clock_tick);
  std::string failure;
  bool any = false;
  for (int cpu = 0; cpu < ncpus_; cpu++) {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof(attr);
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.sample_period = uint64_t(period_ms) * 1'000'000ull;  // ns for cpu-clock
    int fd = perf_event_open(attr, cpu);
    if (fd < 0) {
      if (errno == ENODEV || errno == ENOENT) continue;  // possible but offline CPU
      failure = std::string("perf_event_open: ") + std::strerror(errno);
      break;
    }
    auto link = link_perf_event(prog_fd, fd, perf_fds_);
    if (!link) {
      failure = link.error().message;
      break;
    }
    any = true;
    if (*link >= 0) links_.emplace_back("link_cpu_tick_" + std::to_string(cpu_tick_links_++), *link);
  }
  cpu_tick_ = failure.empty() && any;
  if (!cpu_tick_)
    spdlog::warn("per-CPU clock tick unavailable ({}): a task that never switches out shows its CPU time "
                 "only when it does",
                 failure.empty() ? "no CPU" : failure);
}

// Pins every map and link of a freshly loaded probe, then the metadata that
// makes the directory a complete, takeable probe.
Result<void> Probe::pin(const ProbeOptions& opts) {
  const std::string& dir = opts.pin_dir;
  if (::mkdir(dir.c_str(), 0700) != 0) return Error::from_errno(errno, "cannot create " + dir);
  const std::pair<const char*, int> maps[] = {
      {"proc_slots", fds_.proc_slots}, {"proc_index", fds_.proc_index},   {"free_slots", fds_.free_slots},
      {"threads", fds_.threads},       {"inflight_io", fds_.inflight_io}, {"events", fds_.events},
      {"drops", fds_.drops},           {"dirty", fds_.dirty},             {"bss", fds_.bss},
      {"rodata", bpf_map__fd(skel_->maps.rodata)}, {"thread_ts", fds_.thread_ts},
      {"runq_cpu", fds_.runq_cpu}};
  for (const auto& [name, fd] : maps)
    if (auto r = pin::pin_fd(fd, dir + "/map_" + name); !r) return r;
  for (const auto& [name, fd] : links_)
    if (auto r = pin::pin_fd(fd, dir + "/" + name); !r) return r;

  pin::PinMeta meta{};
  meta.magic = pin::kMetaMagic;
  meta.format = pin::kMetaFormat;
  meta.ncpus = uint32_t(ncpus_);
  meta.identity = probe_identity();
  meta.max_procs = opts.max_procs;
  meta.max_threads = opts.max_threads;
  meta.max_inflight_io = opts.max_inflight_io;
  meta.ringbuf_bytes = opts.ringbuf_bytes;
  meta.cpu_tick_ms = opts.cpu_tick_ms;
  meta.force_raw_tp = opts.force_raw_tp;
  meta.cpu_tick_attached = cpu_tick_;
  meta.unpinnable = !perf_fds_.empty();
  meta.thread_ts = thread_ts_;
  meta.runq_blame_asked = opts.runq_blame;
  meta.runq_blame = runq_blame_;
  meta.cpu_tick_links = cpu_tick_links_;
  meta.loader_pid = uint32_t(getpid());
  meta.attached_at_ns = attached_at_ns_;
  if (hooks_.size() > size_t(pin::kMaxHooks)) return Error{E2BIG, "too many hooks for the pin metadata"};
  meta.nhooks = uint32_t(hooks_.size());
  for (size_t i = 0; i < hooks_.size(); i++) {
    copy_str(meta.hooks[i].name, sizeof(meta.hooks[i].name), hooks_[i].name);
    meta.hooks[i].mode = uint8_t(hooks_[i].mode);
    copy_str(meta.hooks[i].reason, sizeof(meta.hooks[i].reason), hooks_[i].reason);
  }
  if (auto r = pin::write_meta(dir, meta); !r) return r;
  pin_dir_ = dir;
  spdlog::info("probe pinned in {}: a restarted faultprobed takes it over", dir);
  if (meta.unpinnable)
    spdlog::warn("this kernel has no perf-event links (Linux < 5.15): a restart will load a fresh probe");
  return {};
}

// Adopts the probe pinned in opts.pin_dir: opens its maps and links and
// loads nothing, so the old (identical) programs keep counting without a gap.
Result<void> Probe::take_over(const ProbeOptions& opts) {
  const std::string& dir = opts.pin_dir;
  auto meta = pin::read_meta(dir);
  if (!meta) return meta.error();
  const pin::PinMeta& m = *meta;
  if (m.identity != probe_identity())
    return Error{ESTALE, "it was loaded from another build of the probe (an upgrade?)"};
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) return Error::from_errno(-ncpus_, "cannot count the possible CPUs");
  auto same = [](const char* what, uint64_t pinned, uint64_t want) -> Result<void> {
    if (pinned == want) return {};
    return Error{EINVAL, std::string("it was loaded with ") + what + "=" + std::to_string(pinned) + ", now " +
                             std::to_string(want)};
  };
  for (auto r : {same("possible CPUs", m.ncpus, uint64_t(ncpus_)), same("max_procs", m.max_procs, opts.max_procs),
                 same("max_threads", m.max_threads, opts.max_threads),
                 same("max_inflight_io", m.max_inflight_io, opts.max_inflight_io),
                 same("ringbuf_bytes", m.ringbuf_bytes, opts.ringbuf_bytes),
                 same("cpu_tick_ms", m.cpu_tick_ms, opts.cpu_tick_ms),
                 same("force_raw_tp", m.force_raw_tp, opts.force_raw_tp),
                 same("runq_blame", m.runq_blame_asked, opts.runq_blame)})
    if (!r) return r;
  if (m.unpinnable) return Error{EOPNOTSUPP, "part of it could not be pinned (no perf-event links before 5.15)"};
  if (m.nhooks > uint32_t(pin::kMaxHooks)) return Error{EINVAL, "its metadata is corrupt"};

  auto open = [&](const std::string& name) -> Result<int> {
    auto fd = pin::open_pinned(dir + "/" + name);
    if (fd) owned_fds_.push_back(*fd);
    return fd;
  };
  // The slot count it was given (asked for, or sized from the machine then).
  {
    auto fd = open("map_proc_slots");
    if (!fd) return fd.error();
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(*fd, &info, &len) != 0 || info.max_entries == 0)
      return Error::from_errno(errno, "cannot inspect the pinned proc_slots");
    max_procs_ = info.max_entries;
  }
  dirty_words_per_cpu_ = (max_procs_ + 63) / 64;
  thread_ts_ = m.thread_ts;
  runq_blame_ = m.runq_blame;
  if (!runq_blame_) runq_blame_reason_ = "off in the probe taken over";
  constexpr uint32_t any = pin::kAnySize;
  struct MapSpec {
    const char* name;
    int* fd;
    uint32_t type, key, value, max;
  } specs[] = {
      {"proc_slots", &fds_.proc_slots, BPF_MAP_TYPE_ARRAY, 4, sizeof(fp_proc), max_procs_},
      {"proc_index", &fds_.proc_index, BPF_MAP_TYPE_HASH, 4, 4, max_procs_},
      {"free_slots", &fds_.free_slots, BPF_MAP_TYPE_STACK, 0, 4, max_procs_},
      {"threads", &fds_.threads, BPF_MAP_TYPE_HASH, 4, any, thread_ts_ ? 1 : opts.max_threads},
      {"thread_ts", &fds_.thread_ts, BPF_MAP_TYPE_TASK_STORAGE, 4, any, any},
      {"inflight_io", &fds_.inflight_io, BPF_MAP_TYPE_HASH, 8, any, opts.max_inflight_io},
      {"events", &fds_.events, BPF_MAP_TYPE_RINGBUF, 0, 0, opts.ringbuf_bytes},
      {"drops", &fds_.drops, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, FP_DROP_NR},
      {"dirty", &fds_.dirty, BPF_MAP_TYPE_ARRAY, 4, 8, dirty_words_per_cpu_ * uint32_t(ncpus_)},
      {"bss", &fds_.bss, BPF_MAP_TYPE_ARRAY, 4, sizeof(Bss), 1},
      {"runq_cpu", &fds_.runq_cpu, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(fp_runq_cpu), 1},
  };
  for (auto& s : specs) {
    auto fd = open(std::string("map_") + s.name);
    if (!fd) return fd.error();
    if (auto r = pin::check_map(*fd, s.name, s.type, s.key, s.value, s.max); !r) return r;
    *s.fd = *fd;
  }

  // The links: held open only to prove they are there (they are pinned).
  hooks_.clear();
  for (uint32_t i = 0; i < m.nhooks; i++) {
    const auto& ph = m.hooks[i];
    std::string name(ph.name, strnlen(ph.name, sizeof(ph.name)));
    const HookSpec* spec = find_hook(name);
    if (!spec) return Error{EINVAL, "it has a hook this build does not know: " + name};
    HookStatus st{spec->name, spec->feeds, spec->required, AttachMode(ph.mode),
                  std::string(ph.reason, strnlen(ph.reason, sizeof(ph.reason)))};
    if (st.mode != AttachMode::Unavailable && st.mode != AttachMode::NotNeeded) {
      auto fd = open("link_" + name);
      if (!fd) return fd.error();
      if (auto r = pin::check_link(*fd, "link_" + name); !r) return r;
    }
    hooks_.push_back(std::move(st));
  }
  for (uint32_t n = 0; n < m.cpu_tick_links; n++) {
    std::string name = "link_cpu_tick_" + std::to_string(n);
    auto fd = open(name);
    if (!fd) return fd.error();
    if (auto r = pin::check_link(*fd, name); !r) return r;
  }
  cpu_tick_ = m.cpu_tick_attached;
  cpu_tick_links_ = m.cpu_tick_links;
  attached_at_ns_ = m.attached_at_ns;
  if (auto r = map_views(); !r) return r;
  resync_ = true;  // the previous reader consumed dirty bits we never saw
  took_over_ = true;
  pin_dir_ = dir;
  double age_s = double(monotonic_now_ns() - attached_at_ns_) / 1e9;
  spdlog::info("took over the probe pinned in {} (loaded by pid {}, attached {:.0f}s ago): counters continue",
               dir, m.loader_pid, age_s);
  return {};
}

std::vector<std::string> Probe::unavailable_counters() const {
  std::vector<std::string> out;
  for (const auto& st : hooks_) {
    const HookSpec* spec = find_hook(st.name);
    if (spec && spec->hw_source) continue;  // hardware_sources() reports those
    if (st.mode == AttachMode::Unavailable && st.name != "block_io_start") out.push_back(st.feeds);
  }
  return out;
}

std::vector<HwSourceStatus> Probe::hardware_sources() const {
  std::vector<HwSourceStatus> out;
  auto hook = [&](const std::string& name) -> const HookStatus* {
    for (const auto& st : hooks_)
      if (st.name == name) return &st;
    return nullptr;
  };
  for (const auto& h : kHooks) {
    if (!h.hw_source) continue;
    const HookStatus* st = hook(h.name);
    HwSourceStatus s;
    s.name = h.hw_source;
    s.tracepoint = std::string(h.category) + ":" + h.name;
    s.fault_class = h.feeds;
    s.available = st && st->mode != AttachMode::Unavailable;
    s.mode = st ? attach_mode_name(st->mode) : "unavailable";
    s.reason = st ? st->reason : "not loaded";
    // Older kernels: failed requests come from block_rq_complete's error (bpf/hw.bpf.h).
    if (!s.available && s.name == "disk") {
      const HookStatus* complete = hook("block_rq_complete");
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

// Copies one slot, retrying once if its owner changed mid-copy (the probe
// bumps `gen` on every allocation and release). False if it kept changing.
bool Probe::copy_slot(uint32_t slot, fp_proc& dst, uint64_t now_ns) const {
  if (!map_slot(slot, now_ns)) return false;
  const fp_proc* s = &slots_[slot];
  auto& gen = const_cast<uint32_t&>(s->gen);
  for (int attempt = 0; attempt < 2; attempt++) {
    uint32_t g1 = std::atomic_ref<uint32_t>(gen).load(std::memory_order_acquire);
    if ((g1 & 1) == 0) {  // free
      dst.gen = g1;
      dst.tgid = 0;
      return true;
    }
    std::memcpy(&dst, s, sizeof(dst));
    std::atomic_thread_fence(std::memory_order_acquire);
    uint32_t g2 = std::atomic_ref<uint32_t>(gen).load(std::memory_order_relaxed);
    if (g1 == g2 && dst.tgid != 0) return true;
  }
  return false;
}

const std::vector<uint32_t>& Probe::refresh() {
  refreshed_at_ns_ = monotonic_now_ns();
  changed_.clear();
  uint32_t hwm = std::min(slots_high_water(), max_procs_);
  if (mirror_.size() < hwm) mirror_.resize(hwm);
  uint32_t words = (hwm + 63) / 64;
  std::fill(dirty_acc_.begin(), dirty_acc_.begin() + words, 0);
  // Swap each CPU's bits to zero before copying: a slot touched after the
  // swap is marked again and picked up next time, so nothing is missed.
  for (int cpu = 0; cpu < ncpus_; cpu++) {
    uint64_t* base = dirty_ + size_t(cpu) * dirty_words_per_cpu_;
    for (uint32_t w = 0; w < words; w++) {
      if (base[w]) dirty_acc_[w] |= std::atomic_ref<uint64_t>(base[w]).exchange(0, std::memory_order_acq_rel);
    }
  }
  for (uint32_t slot : retry_) dirty_acc_[slot / 64] |= 1ull << (slot % 64);
  retry_.clear();
  if (resync_) {  // after a takeover: every used slot, once
    for (uint32_t w = 0; w < words; w++) dirty_acc_[w] = ~0ull;
    resync_ = false;
  }
  for (uint32_t w = 0; w < words; w++) {
    for (uint64_t bits = dirty_acc_[w]; bits; bits &= bits - 1) {
      uint32_t slot = w * 64 + uint32_t(__builtin_ctzll(bits));
      if (slot >= hwm) break;
      if (copy_slot(slot, mirror_[slot], refreshed_at_ns_))
        changed_.push_back(slot);
      else
        retry_.push_back(slot);  // churning right now: take it next time
    }
  }
  unmap_idle_slot_chunks(refreshed_at_ns_);
  return changed_;
}

void Probe::read(Sample& out) {
  refresh();
  out.ts_ns = refreshed_at_ns_;
  out.procs.clear();
  for (const auto& p : mirror_)
    if (p.tgid != 0) out.procs.push_back(p);
}

void Probe::read_full(Sample& out) const {
  out.procs.clear();
  out.ts_ns = monotonic_now_ns();
  uint32_t hwm = std::min(slots_high_water(), max_procs_);
  out.procs.reserve(hwm);
  fp_proc copy;
  for (uint32_t i = 0; i < hwm; i++)
    if (copy_slot(i, copy, out.ts_ns) && copy.tgid != 0) out.procs.push_back(copy);
}

int Probe::on_event(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Probe*>(ctx);
  EventBatch* out = self->sink_;
  if (!out) return 0;
  if (size < sizeof(fp_event_hdr)) {
    self->malformed_++;
    return 0;
  }
  fp_event_hdr hdr;
  std::memcpy(&hdr, data, sizeof(hdr));
  auto comm = [&](const char* c) { return std::string(c, strnlen(c, FP_COMM_LEN)); };
  switch (hdr.type) {
    case FP_EV_EXIT: {
      if (size < sizeof(fp_exit_event)) break;
      fp_exit_event e;
      std::memcpy(&e, data, sizeof(e));
      out->exits.push_back(ExitRecord{e.hdr.ts_ns, e.exit_code, e.proc});
      return 0;
    }
    case FP_EV_FATAL_SIGNAL: {
      if (size < sizeof(fp_signal_event)) break;
      fp_signal_event e;
      std::memcpy(&e, data, sizeof(e));
      out->signals.push_back(SignalRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm(e.hdr.comm),
                                          e.sig, e.tid, e.sender_tgid, e.result, e.code});
      return 0;
    }
    case FP_EV_OOM_VICTIM: {
      if (size < sizeof(fp_oom_event)) break;
      fp_oom_event e;
      std::memcpy(&e, data, sizeof(e));
      out->ooms.push_back(OomRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm(e.hdr.comm),
                                    e.total_vm_kb, e.anon_rss_kb, e.file_rss_kb, e.shmem_rss_kb});
      return 0;
    }
    case FP_EV_HANG: {
      if (size < sizeof(fp_hang_event)) break;
      fp_hang_event e;
      std::memcpy(&e, data, sizeof(e));
      out->hangs.push_back(HangRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm(e.hdr.comm), e.tid,
                                      e.dstate_since_ns});
      return 0;
    }
    default:
      if (is_hw_event_type(hdr.type) && decode_hw_event(data, size, *out)) return 0;
      break;
  }
  self->malformed_++;
  return 0;
}

int Probe::drain(EventBatch& out) {
  sink_ = &out;
  int n = ring_buffer__consume(rb_);
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

int Probe::poll(EventBatch& out, std::chrono::milliseconds timeout) {
  sink_ = &out;
  int n = ring_buffer__poll(rb_, int(timeout.count()));
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

DropCounts Probe::drops() const {
  DropCounts total{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return total;
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu), 0);
  int fd = fds_.drops;
  for (uint32_t r = 0; r < FP_DROP_NR; r++) {
    if (bpf_map_lookup_elem(fd, &r, vals.data())) continue;
    for (auto v : vals) total[r] += v;
  }
  return total;
}

namespace {
size_t count_keys(int fd, size_t key_size) {
  std::vector<uint8_t> key(key_size), next(key_size);
  size_t n = 0;
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    n++;
    key = next;
    prev = key.data();
  }
  return n;
}
}  // namespace

size_t Probe::proc_index_entries() const { return count_keys(fds_.proc_index, 4); }
size_t Probe::thread_entries() const { return count_keys(fds_.threads, 4); }
size_t Probe::inflight_io_entries() const { return count_keys(fds_.inflight_io, 8); }
bool Probe::indexed(uint32_t tgid) const {
  uint32_t slot = 0;
  return bpf_map_lookup_elem(fds_.proc_index, &tgid, &slot) == 0;
}

uint32_t Probe::slots_high_water() const {
  return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(*hwm_)).load(std::memory_order_acquire);
}

}  // namespace fp
