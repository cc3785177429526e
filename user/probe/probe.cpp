#include "probe/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "faultprobe.skel.h"

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
};

constexpr HookSpec kHooks[] = {
    {"sched_switch", "cpu_ns, runq_wait, nvcsw, nivcsw, dstate", true, false, "sched"},
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
    {"page_fault_user", "page_faults", false, false, "exceptions"},
    {"mm_vmscan_direct_reclaim_begin", "reclaim", false, false, "vmscan"},
    {"mm_vmscan_direct_reclaim_end", "reclaim", false, false, "vmscan"},
    {"rss_stat", "rss_bytes", false, false, "kmem"},
    {"signal_generate", "fatal_signals, signal events", false, false, "signal"},
    {"mark_victim", "oom_victim, oom events", false, true, "oom"},
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

}  // namespace

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

void Probe::SkelDeleter::operator()(struct faultprobe* s) const { faultprobe::destroy(s); }

Result<std::unique_ptr<Probe>> Probe::start(const ProbeOptions& opts) {
  if (auto pre = check_probe_prerequisites(); !pre) return pre.error();
  std::unique_ptr<Probe> p(new Probe());
  if (auto r = p->init(opts); !r) return r.error();
  return p;
}

Probe::~Probe() {
  for (auto* l : links_) bpf_link__destroy(l);
  for (int fd : perf_fds_) close(fd);
  if (rb_) ring_buffer__free(rb_);
  if (slots_) munmap(const_cast<fp_proc*>(slots_), slots_map_len_);
  if (dirty_) munmap(dirty_, dirty_map_len_);
}

Result<void> Probe::init(const ProbeOptions& opts) {
  // 1. open
  skel_.reset(faultprobe::open());
  if (!skel_) return Error::from_errno(errno, "cannot open the BPF probe object");
  bpf_object* obj = skel_->obj;

  // 2. configure: map sizes
  if (opts.max_procs == 0 || opts.max_threads == 0 || opts.max_inflight_io == 0)
    return Error{EINVAL, "probe map sizes must be positive"};
  long page = sysconf(_SC_PAGESIZE);
  if (opts.ringbuf_bytes < uint32_t(page) || (opts.ringbuf_bytes & (opts.ringbuf_bytes - 1)))
    return Error{EINVAL, "ring buffer size must be a power of two of at least one page"};
  max_procs_ = opts.max_procs;
  bpf_map__set_max_entries(skel_->maps.proc_slots, opts.max_procs);
  bpf_map__set_max_entries(skel_->maps.proc_index, opts.max_procs);
  bpf_map__set_max_entries(skel_->maps.free_slots, opts.max_procs);
  bpf_map__set_max_entries(skel_->maps.threads, opts.max_threads);
  bpf_map__set_max_entries(skel_->maps.inflight_io, opts.max_inflight_io);
  bpf_map__set_max_entries(skel_->maps.events, opts.ringbuf_bytes);
  ncpus_ = libbpf_num_possible_cpus();
  if (ncpus_ <= 0) return Error::from_errno(-ncpus_, "cannot count the possible CPUs");
  dirty_words_per_cpu_ = (opts.max_procs + 63) / 64;
  bpf_map__set_max_entries(skel_->maps.dirty, dirty_words_per_cpu_ * uint32_t(ncpus_));
  skel_->rodata->fp_dirty_words_per_cpu = dirty_words_per_cpu_;

  // 3. choose one attach mode per hook (tp_btf where the kernel's BTF has
  //    the tracepoint's type, raw_tp otherwise) and turn the twin off.
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return Error::from_errno(errno, "cannot read the kernel's BTF");
  hooks_.clear();
  for (const auto& h : kHooks) {
    HookStatus st{h.name, h.feeds, h.required, AttachMode::Unavailable, {}};
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
  btf__free(vmlinux);

  // 4. load
  if (int err = faultprobe::load(skel_.get()); err) {
    return Error::from_errno(-err,
                             "the kernel refused to load the BPF probe (run with -v for the "
                             "verifier's log; kernels older than 5.12 lack the BPF atomics it uses)");
  }

  // 5. free slots: pushed high to low so that pops hand out 0, 1, 2... first.
  int free_fd = bpf_map__fd(skel_->maps.free_slots);
  for (uint32_t i = opts.max_procs; i-- > 0;) {
    if (bpf_map_update_elem(free_fd, nullptr, &i, BPF_ANY))
      return Error::from_errno(errno, "cannot fill the probe's free-slot stack");
  }

  // 6. map the per-process slots read-only
  if (bpf_map__value_size(skel_->maps.proc_slots) != sizeof(fp_proc))
    return Error{EINVAL, "probe object and loader disagree on sizeof(struct fp_proc)"};
  slots_map_len_ = (sizeof(fp_proc) * size_t(opts.max_procs) + page - 1) / page * page;
  void* m = mmap(nullptr, slots_map_len_, PROT_READ, MAP_SHARED,
                 bpf_map__fd(skel_->maps.proc_slots), 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the per-process counters");
  slots_ = static_cast<const fp_proc*>(m);
  dirty_map_len_ = (sizeof(uint64_t) * dirty_words_per_cpu_ * size_t(ncpus_) + page - 1) / page * page;
  m = mmap(nullptr, dirty_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(skel_->maps.dirty), 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the probe's dirty-slot bitmap");
  dirty_ = static_cast<uint64_t*>(m);
  dirty_acc_.assign(dirty_words_per_cpu_, 0);
  // Reserved once so that mirror entries never move: the engine keys slots by
  // address. Untouched capacity costs address space, not memory.
  mirror_.reserve(max_procs_);

  rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), &Probe::on_event, this, nullptr);
  if (!rb_) return Error::from_errno(errno, "cannot open the probe's ring buffer");

  // 7. attach, hook by hook: an optional hook that fails is reported, not fatal.
  std::string tracefs = tracefs_dir();
  for (auto& st : hooks_) {
    if (st.mode == AttachMode::Unavailable) continue;
    std::string prog_name = (st.mode == AttachMode::TpBtf       ? "btf_"
                             : st.mode == AttachMode::RawTp     ? "raw_"
                                                                : "tp_") +
                            st.name;
    bpf_program* prog = bpf_object__find_program_by_name(obj, prog_name.c_str());
    bpf_link* link = prog ? bpf_program__attach(prog) : nullptr;
    if (!link) {
      int err = errno;
      st.reason = "cannot attach " + prog_name + ": " + std::strerror(err);
      if (st.mode == AttachMode::Tracepoint && tracefs.empty())
        st.reason += " (tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing)";
      st.mode = AttachMode::Unavailable;
      continue;
    }
    links_.push_back(link);
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
    spdlog::warn("{} unavailable: {} not counted ({})", st.name, st.feeds, st.reason);
  }
  attach_cpu_tick(opts.cpu_tick_ms);
  attached_at_ns_ = monotonic_now_ns();
  return {};
}

// One software cpu-clock perf event per online CPU runs cpu_clock_tick. Not
// fatal when it fails: CPU time is then counted at context switches only.
void Probe::attach_cpu_tick(uint32_t period_ms) {
  if (period_ms == 0) return;
  bpf_program* prog = skel_->progs.cpu_clock_tick;
  std::string failure;
  for (int cpu = 0; cpu < ncpus_; cpu++) {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof(attr);
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.sample_period = uint64_t(period_ms) * 1'000'000ull;  // ns for cpu-clock
    int fd = int(syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC));
    if (fd < 0) {
      if (errno == ENODEV || errno == ENOENT) continue;  // possible but offline CPU
      failure = std::string("perf_event_open: ") + std::strerror(errno);
      break;
    }
    perf_fds_.push_back(fd);
    bpf_link* link = bpf_program__attach_perf_event(prog, fd);
    if (!link) {
      failure = std::string("attach: ") + std::strerror(errno);
      break;
    }
    links_.push_back(link);
  }
  cpu_tick_ = failure.empty() && !perf_fds_.empty();
  if (!cpu_tick_)
    spdlog::warn("per-CPU clock tick unavailable ({}): a task that never switches out shows its CPU time "
                 "only when it does",
                 failure.empty() ? "no CPU" : failure);
}

std::vector<std::string> Probe::unavailable_counters() const {
  std::vector<std::string> out;
  for (const auto& st : hooks_)
    if (st.mode == AttachMode::Unavailable && st.name != "block_io_start") out.push_back(st.feeds);
  return out;
}

// Copies one slot, retrying once if its owner changed mid-copy (the probe
// bumps `gen` on every allocation and release). False if it kept changing.
bool Probe::copy_slot(uint32_t slot, fp_proc& dst) const {
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
  for (uint32_t w = 0; w < words; w++) {
    for (uint64_t bits = dirty_acc_[w]; bits; bits &= bits - 1) {
      uint32_t slot = w * 64 + uint32_t(__builtin_ctzll(bits));
      if (slot >= hwm) break;
      if (copy_slot(slot, mirror_[slot]))
        changed_.push_back(slot);
      else
        retry_.push_back(slot);  // churning right now: take it next time
    }
  }
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
    if (copy_slot(i, copy) && copy.tgid != 0) out.procs.push_back(copy);
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
  int fd = bpf_map__fd(skel_->maps.drops);
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

size_t Probe::proc_index_entries() const { return count_keys(bpf_map__fd(skel_->maps.proc_index), 4); }
size_t Probe::thread_entries() const { return count_keys(bpf_map__fd(skel_->maps.threads), 4); }
size_t Probe::inflight_io_entries() const { return count_keys(bpf_map__fd(skel_->maps.inflight_io), 8); }
bool Probe::indexed(uint32_t tgid) const {
  uint32_t slot = 0;
  return bpf_map_lookup_elem(bpf_map__fd(skel_->maps.proc_index), &tgid, &slot) == 0;
}

uint32_t Probe::slots_high_water() const {
  return std::atomic_ref<uint32_t>(skel_->bss->fp_slots_hwm).load(std::memory_order_acquire);
}

}  // namespace fp
