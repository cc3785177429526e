// The probe's life cycle: start (load, or take over the pins: pin.cpp),
// load (open -> size maps -> choose attach modes -> load -> fill free slots
// -> map -> attach), the attachments themselves, and the teardown. Reading
// the slots is slots.cpp, the ring buffer ring.cpp, the probe's own
// counters stats.cpp.
#include "probe/probe.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "probe/loader/kernel.h"
#include "probe/loader/pin.h"
#include "probe/loader/skel.h"

namespace fp {

uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

namespace {

int perf_event_open(perf_event_attr& attr, int cpu) {
  return int(syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
}

}  // namespace

void Probe::SkelDeleter::operator()(struct faultprobe* s) const { faultprobe::destroy(s); }

Result<std::unique_ptr<Probe>> Probe::start(const ProbeOptions& in) {
  if (auto pre = check_probe_prerequisites(); !pre) return pre.error();
  if (in.max_threads == 0 || in.max_inflight_io == 0)
    return Error{EINVAL, "probe map sizes must be positive"};
  if (in.inflight_array_entries == 0 || in.inflight_array_entries > FP_INFLIGHT_ARRAY_ENTRIES ||
      (in.inflight_array_entries & (in.inflight_array_entries - 1)))
    return Error{EINVAL, "inflight_array_entries must be a power of two of at most " +
                             std::to_string(FP_INFLIGHT_ARRAY_ENTRIES)};
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
      if (r) {
        p->seed(opts.seed);  // what the previous owner's pass missed (a probe pinned without one)
        return p;
      }
      p.reset();
      spdlog::warn("cannot take over the probe pinned in {}: {}; removing it and loading a fresh probe "
                   "(counters restart from zero)",
                   opts.pin_dir, r.error().message);
      if (auto rm = pin::remove_dir(opts.pin_dir); !rm)
        return Error{rm.error().code, "cannot remove the stale probe pins: " + rm.error().message};
    }
  }
  std::unique_ptr<Probe> p(new Probe());
  if (auto r = p->load(opts); !r) {
    // A kernel that refuses the task iterator (seed.bpf.c) still gets the probe, seeded from /proc.
    if ((opts.seed != SeedMode::Auto || !p->seed_iter_reason_.empty()) && !p->net_resolve_.walk)
      return r.error();
    std::string why = "the probe with the iterators did not load (" + r.error().message + ")";
    spdlog::warn("{}: trying without them, seeding from /proc, socket owners only where they run", why);
    const bool seeded_by_iter = opts.seed == SeedMode::Auto;
    if (seeded_by_iter) opts.seed = SeedMode::Proc;
    p.reset(new Probe());
    p->iters_refused_ = true;
    if (auto again = p->load(opts); !again) return again.error();
    if (seeded_by_iter) p->seed_iter_reason_ = why;
    p->net_resolve_.reason = why;
  }
  if (!opts.pin_dir.empty()) {
    if (auto r = p->pin(opts); !r) {
      spdlog::warn("cannot pin the probe ({}): running unpinned, its counters will not survive a restart",
                   r.error().message);
      if (auto rm = pin::remove_dir(opts.pin_dir); !rm) spdlog::warn("{}", rm.error().message);
    }
  }
  p->seed(opts.seed);  // attached first: a process that exits during the pass is seen exiting
  return p;
}

Result<void> Probe::remove_pins(const std::string& pin_dir) { return pin::remove_dir(pin_dir); }

Probe::~Probe() {
  if (net_walker_.joinable()) net_walker_.join();
  if (rb_) ring_buffer__free(rb_);
  if (slots_) munmap(const_cast<fp_proc*>(slots_), slots_map_len_);
  if (dirty_) munmap(dirty_, dirty_map_len_);
  if (bss_map_) munmap(bss_map_, bss_map_len_);
  // Closing a link detaches its program unless the link is pinned: a pinned
  // probe keeps running for the next daemon.
  for (auto& l : links_) close(l.second);
  for (int fd : perf_fds_) close(fd);
  for (int fd : owned_fds_) close(fd);
  for (int fd : hook_prog_fds_) close(fd);
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
  skel_->rodata->fp_inflight_rq_mask = opts.inflight_array_entries - 1;
  skel_->rodata->fp_loaded_ns = monotonic_now_ns();  // threads started from here are counted from birth
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) return Error::from_errno(-ncpus_, "cannot count the possible CPUs");
  dirty_words_per_cpu_ = (max_procs_ + 63) / 64;
  bpf_map__set_max_entries(skel_->maps.dirty, dirty_words_per_cpu_ * uint32_t(ncpus_));
  skel_->rodata->fp_dirty_words_per_cpu = dirty_words_per_cpu_;

  // 3. choose one attach mode per hook from what the kernel offers (tp_btf
  //    where its BTF has the tracepoint's type, raw_tp otherwise; the rules
  //    are probe/attach.cpp's) and load only the chosen program of each.
  for (const auto& h : hook_specs()) {
    auto has = [&](const char* prefix) {
      return bpf_object__find_program_by_name(obj, (prefix + std::string(h.name)).c_str()) != nullptr;
    };
    if (h.classic ? !has("tp_") : !has("btf_") || !has("raw_"))
      return Error{ENOENT, std::string("probe object lacks ") + (h.classic ? "program tp_" : "hook ") + h.name};
  }
  auto kernel = read_kernel_offer();
  if (!kernel) return kernel.error();
  AttachPlan plan = plan_attach(*kernel, {opts.force_raw_tp, opts.runq_from_wakeups, opts.cpu_tick_ms, opts.io_from_submitter, opts.runq_blame,
                                          {opts.raw_tp_hooks.begin(), opts.raw_tp_hooks.end()}});
  for (const auto& st : plan.hooks) {
    const std::string chosen = program_name(st.name, st.mode);
    for (const char* prefix : {"tp_", "btf_", "raw_"})
      if (bpf_program* p = bpf_object__find_program_by_name(obj, (prefix + st.name).c_str()))
        bpf_program__set_autoload(p, prefix + st.name == chosen);
  }
  hooks_ = std::move(plan.hooks);
  runq_sched_info_ = plan.runq_sched_info;
  skel_->rodata->fp_runq_sched_info = runq_sched_info_;
  runq_blame_ = plan.runq_blame;
  runq_blame_reason_ = plan.runq_blame_reason;
  skel_->rodata->fp_runq_blame = runq_blame_;
  task_io_ = plan.task_io;
  skel_->rodata->fp_task_io = task_io_;
  if (!task_io_)
    spdlog::info("IO bytes from the block requests' submitter: {}",
                 opts.io_from_submitter ? "as asked" : "the kernel has no task IO accounting (CONFIG_TASK_IO_ACCOUNTING)");
  // seeding (seed.cpp): the task iterator where the kernel has what it needs.
  seed_iter_reason_ = iters_refused_ ? "the probe with the iterators did not load"
                                     : seed_iter_missing(kernel->task_iter, opts.seed);
  bpf_program__set_autoload(skel_->progs.seed_task, seed_iter_reason_.empty());
  // the socket-owner resolver (net_resolve.cpp): the task-file iterator
  net_resolve_.walk = kernel->task_file_iter && !iters_refused_;
  if (!kernel->task_file_iter)
    net_resolve_.reason = "the kernel has no BPF task-file iterator with bpf_sock_from_file (Linux 5.11+)";
  bpf_program__set_autoload(skel_->progs.net_resolve, net_resolve_.walk);
  skel_->rodata->fp_disk_err_from_complete = plan.disk_err_from_complete;
  thread_ts_ = plan.thread_ts;
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
  fds_.inflight_rq = bpf_map__fd(skel_->maps.inflight_rq);
  fds_.events = bpf_map__fd(skel_->maps.events);
  fds_.drops = bpf_map__fd(skel_->maps.drops);
  fds_.dirty = bpf_map__fd(skel_->maps.dirty);
  fds_.bss = bpf_map__fd(skel_->maps.bss);
  fds_.thread_ts = bpf_map__fd(skel_->maps.thread_ts);
  fds_.runq_cpu = bpf_map__fd(skel_->maps.runq_cpu);
  fds_.net_owners = bpf_map__fd(skel_->maps.net_owners);
  fds_.net_endpoints = bpf_map__fd(skel_->maps.net_endpoints);
  fds_.net_drop_reasons = bpf_map__fd(skel_->maps.net_drop_reasons);
  fds_.net_pending = bpf_map__fd(skel_->maps.net_pending);

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
  const std::string& tracefs = kernel->tracefs;
  for (auto& st : hooks_) {
    if (st.mode == AttachMode::Unavailable || st.mode == AttachMode::NotNeeded) continue;
    const std::string prog_name = program_name(st.name, st.mode);
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
    if (int fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 0); fd >= 0) hook_prog_fds_.push_back(fd);
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
    if (newer_hook(st.name)) {
      spdlog::info("{} unavailable ({}): {}", st.name, st.reason, st.feeds);
      continue;
    }
    if (const HookSpec* spec = find_hook(st.name); spec && spec->hw_source) {
      spdlog::info("hardware source {} unavailable: {}", st.name, st.reason);
      continue;
    }
    spdlog::warn("{} unavailable: {} not counted ({})", st.name, st.feeds, st.reason);
  }
  attach_cpu_tick(opts.cpu_tick_ms);
  if (seed_iter_reason_.empty()) {  // a link, pinned with the others: a takeover seeds with it
    auto link = create_iter_link(bpf_program__fd(skel_->progs.seed_task), "the task iterator");
    if (link) {
      links_.emplace_back("link_seed_iter", *link);
      seed_link_ = *link;
    } else {
      seed_iter_reason_ = link.error().message;
    }
  }
  if (net_resolve_.walk) {  // pinned with the others: a takeover walks with it
    auto link = create_iter_link(bpf_program__fd(skel_->progs.net_resolve), "the socket-owner resolver");
    if (link) {
      links_.emplace_back("link_net_resolve", *link);
      net_resolve_link_ = *link;
    } else {
      net_resolve_.walk = false;
      net_resolve_.reason = link.error().message;
    }
  }
  attached_at_ns_ = monotonic_now_ns();
  return {};
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

}  // namespace fp
