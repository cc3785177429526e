#include "probe/loader/pin.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cstdint>
#include <vector>

#include <spdlog/spdlog.h>

#include "probe/loader/skel.h"
#include "probe/probe.h"

namespace fp::pin {

uint64_t fnv1a(const void* data, size_t len, uint64_t h) {
  auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

Result<void> check_bpffs(const std::string& path) {
  // The nearest existing ancestor decides: the pin dir itself is created later.
  std::filesystem::path probe = std::filesystem::absolute(path).lexically_normal();
  while (!exists(probe.string()) && probe.has_parent_path() && probe != probe.parent_path())
    probe = probe.parent_path();
  struct statfs fs{};
  if (::statfs(probe.c_str(), &fs) != 0) return Error::from_errno(errno, "cannot inspect " + probe.string());
  if (fs.f_type != BPF_FS_MAGIC)
    return Error{ENOTSUP, path + " is not on a BPF filesystem (mount one: mount -t bpf bpf /sys/fs/bpf)"};
  if (probe != std::filesystem::absolute(path).lexically_normal() &&
      probe != std::filesystem::absolute(path).lexically_normal().parent_path())
    return Error{ENOENT, "the parent of " + path + " does not exist"};
  return {};
}

Result<void> pin_fd(int fd, const std::string& path) {
  if (bpf_obj_pin(fd, path.c_str()) != 0) return Error::from_errno(errno, "cannot pin " + path);
  return {};
}

Result<int> open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Error::from_errno(errno, "cannot open the pinned " + path);
  return fd;
}

Result<void> check_map(int fd, const char* name, uint32_t type, uint32_t key_size, uint32_t value_size,
                       uint32_t max_entries) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return Error::from_errno(errno, std::string("pinned ") + name + " is not a map");
  auto differs = [&](const char* what, uint32_t have, uint32_t want) {
    return Error{EINVAL, std::string("pinned map ") + name + " has " + what + " " + std::to_string(have) +
                             ", this probe needs " + std::to_string(want)};
  };
  if (info.type != type) return differs("type", info.type, type);
  if (key_size != kAnySize && info.key_size != key_size) return differs("key size", info.key_size, key_size);
  if (value_size != kAnySize && info.value_size != value_size)
    return differs("value size", info.value_size, value_size);
  if (max_entries != kAnySize && info.max_entries != max_entries)
    return differs("max_entries", info.max_entries, max_entries);
  return {};
}

Result<void> check_link(int fd, const std::string& name) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.id == 0 || info.prog_id == 0)
    return Error{EINVAL, "pinned " + name + " is not an attached bpf_link"};
  return {};
}

int prog_of_link(int link_fd) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0 || info.prog_id == 0) return -1;
  return bpf_prog_get_fd_by_id(info.prog_id);
}

Result<void> write_meta(const std::string& dir, const PinMeta& meta) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fp_meta", sizeof(uint32_t), sizeof(PinMeta), 1, nullptr);
  if (fd < 0) return Error::from_errno(errno, "cannot create the pin metadata map");
  uint32_t key = 0;
  Result<void> r;
  if (bpf_map_update_elem(fd, &key, &meta, BPF_ANY) != 0)
    r = Error::from_errno(errno, "cannot write the pin metadata");
  else
    r = pin_fd(fd, dir + "/meta");
  close(fd);
  return r;
}

Result<PinMeta> read_meta(const std::string& dir) {
  if (!exists(dir + "/meta"))
    return Error{ENOENT, "the pins in " + dir + " are incomplete (no meta: an interrupted start?)"};
  auto fd = open_pinned(dir + "/meta");
  if (!fd) return fd.error();
  PinMeta meta{};
  uint32_t key = 0;
  Result<void> shape = check_map(*fd, "meta", BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(PinMeta), 1);
  int err = shape ? (bpf_map_lookup_elem(*fd, &key, &meta) == 0 ? 0 : errno) : 0;
  close(*fd);
  if (!shape) return Error{EINVAL, shape.error().message + " (pinned by another faultprobe version)"};
  if (err) return Error::from_errno(err, "cannot read the pin metadata in " + dir);
  if (meta.magic != kMetaMagic || meta.format != kMetaFormat)
    return Error{EINVAL, "the pins in " + dir + " were written by another faultprobe version"};
  return meta;
}

Result<void> remove_dir(const std::string& dir) {
  if (!exists(dir)) return {};
  if (auto fs = check_bpffs(dir); !fs) return Error{fs.error().code, "refusing to remove " + dir + ": " +
                                                                         fs.error().message};
  std::error_code ec;
  std::vector<std::filesystem::path> links, rest;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    (name.rfind("link_", 0) == 0 ? links : rest).push_back(e.path());
  }
  if (ec) return Error{ec.value(), "cannot list " + dir + ": " + ec.message()};
  // Unpinning the last reference to a link detaches its program.
  for (auto* group : {&links, &rest}) {
    for (const auto& p : *group) {
      if (std::filesystem::remove_all(p, ec) == static_cast<std::uintmax_t>(-1) || ec)
        return Error{ec.value(), "cannot unpin " + p.string() + ": " + ec.message()};
    }
  }
  if (::rmdir(dir.c_str()) != 0) return Error::from_errno(errno, "cannot remove " + dir);
  return {};
}

}  // namespace fp::pin

// The Probe's side: what it pins after a load, and how it adopts pins.
namespace fp {

namespace {

// What a pinned probe must match to be taken over: the BPF object itself
// and the structs this loader reads out of it.
uint64_t probe_identity() {
  size_t sz = 0;
  const void* elf = faultprobe::elf_bytes(&sz);
  const uint32_t abi[] = {uint32_t(sizeof(fp_proc)),         uint32_t(sizeof(fp_exit_event)),
                          uint32_t(sizeof(fp_signal_event)), uint32_t(sizeof(fp_oom_event)),
                          uint32_t(sizeof(fp_hang_event)),   uint32_t(sizeof(Bss)),
                          uint32_t(sizeof(fp_runq_cpu)),     uint32_t(sizeof(fp_net_ep)),
                          uint32_t(sizeof(fp_net_pending)),
                          FP_HIST_SLOTS,                     FP_DROP_NR,
                          pin::kMetaFormat};
  return pin::fnv1a(abi, sizeof(abi), pin::fnv1a(elf, sz));
}

void copy_str(char* dst, size_t cap, const std::string& s) {
  size_t n = std::min(cap - 1, s.size());
  std::memcpy(dst, s.data(), n);
  dst[n] = '\0';
}

}  // namespace

// Pins every map and link of a freshly loaded probe, then the metadata that
// makes the directory a complete, takeable probe.
Result<void> Probe::pin(const ProbeOptions& opts) {
  const std::string& dir = opts.pin_dir;
  if (::mkdir(dir.c_str(), 0700) != 0) return Error::from_errno(errno, "cannot create " + dir);
  const std::pair<const char*, int> maps[] = {
      {"proc_slots", fds_.proc_slots}, {"proc_index", fds_.proc_index},   {"free_slots", fds_.free_slots},
      {"threads", fds_.threads},       {"inflight_io", fds_.inflight_io}, {"events", fds_.events},
      {"inflight_rq", fds_.inflight_rq},
      {"drops", fds_.drops},           {"dirty", fds_.dirty},             {"bss", fds_.bss},
      {"rodata", bpf_map__fd(skel_->maps.rodata)}, {"thread_ts", fds_.thread_ts},
      {"runq_cpu", fds_.runq_cpu},     {"net_owners", fds_.net_owners},   {"net_endpoints", fds_.net_endpoints},
      {"net_drop_reasons", fds_.net_drop_reasons}, {"net_pending", fds_.net_pending}};
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
  meta.task_io = task_io_;
  meta.io_from_submitter = opts.io_from_submitter;
  meta.runq_blame_asked = opts.runq_blame;
  meta.runq_blame = runq_blame_;
  meta.cpu_tick_links = cpu_tick_links_;
  meta.loader_pid = uint32_t(getpid());
  meta.attached_at_ns = attached_at_ns_;
  meta.seed_iter = seed_link_ >= 0;
  meta.net_resolve = net_resolve_link_ >= 0;
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
                 same("io_from_submitter", m.io_from_submitter, opts.io_from_submitter),
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
  task_io_ = m.task_io;
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
      {"inflight_rq", &fds_.inflight_rq, BPF_MAP_TYPE_ARRAY, 4, any, FP_INFLIGHT_ARRAY_ENTRIES},
      {"events", &fds_.events, BPF_MAP_TYPE_RINGBUF, 0, 0, opts.ringbuf_bytes},
      {"drops", &fds_.drops, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, FP_DROP_NR},
      {"dirty", &fds_.dirty, BPF_MAP_TYPE_ARRAY, 4, 8, dirty_words_per_cpu_ * uint32_t(ncpus_)},
      {"bss", &fds_.bss, BPF_MAP_TYPE_ARRAY, 4, sizeof(Bss), 1},
      {"runq_cpu", &fds_.runq_cpu, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(fp_runq_cpu), 1},
      {"net_owners", &fds_.net_owners, BPF_MAP_TYPE_LRU_HASH, 8, any, FP_DEFAULT_NET_OWNERS},
      {"net_endpoints", &fds_.net_endpoints, BPF_MAP_TYPE_LRU_HASH, sizeof(fp_net_ep_key), sizeof(fp_net_ep),
       FP_DEFAULT_NET_ENDPOINTS},
      {"net_drop_reasons", &fds_.net_drop_reasons, BPF_MAP_TYPE_LRU_HASH, sizeof(fp_net_drop_key), 8,
       FP_DEFAULT_NET_DROP_REASONS},
      {"net_pending", &fds_.net_pending, BPF_MAP_TYPE_HASH, 8, sizeof(fp_net_pending), FP_DEFAULT_NET_PENDING},
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
      if (int prog = pin::prog_of_link(*fd); prog >= 0) hook_prog_fds_.push_back(prog);
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
  if (m.seed_iter) {
    auto fd = open("link_seed_iter");
    if (!fd) return fd.error();
    if (auto r = pin::check_link(*fd, "link_seed_iter"); !r) return r;
    seed_link_ = *fd;
  } else {
    seed_iter_reason_ = "the probe taken over was loaded without the task iterator";
  }
  if (m.net_resolve) {
    auto fd = open("link_net_resolve");
    if (!fd) return fd.error();
    if (auto r = pin::check_link(*fd, "link_net_resolve"); !r) return r;
    net_resolve_link_ = *fd;
    net_resolve_.walk = true;
  } else {
    net_resolve_.reason = "the probe taken over was loaded without the socket-owner resolver";
  }
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

}  // namespace fp
