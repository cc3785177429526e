#include "probe/seed.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "act/process.h"
#include "probe/probe.h"

namespace fp {

const char* seed_method_name(SeedMethod m) {
  switch (m) {
    case SeedMethod::None: return "none";
    case SeedMethod::TaskIter: return "task_iter";
    case SeedMethod::Proc: return "proc";
  }
  return "?";
}

nlohmann::json seed_status_json(const SeedStatus& s) {
  const fp_seed_stats& f = s.found;
  nlohmann::json j = {{"method", seed_method_name(s.method)},
                      {"reason", s.reason},
                      {"ok", s.ok},
                      {"tasks", f.tasks},
                      {"processes", f.procs},
                      {"threads", f.threads},
                      {"dstate_sleeps", f.dstate},
                      {"dstate_withdrawn", f.withdrawn},
                      {"dstate_since_unknown", f.since_unknown},
                      {"exiting_skipped", f.exiting},
                      {"released", f.released},
                      {"proc_added", s.proc_added},
                      {"slots_full", s.slots_full},
                      {"duration_ms", s.duration_ms}};
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

std::string seed_iter_missing(bool kernel_has_task_iter, SeedMode mode) {
  // (with SeedMode::None it is still loaded: a takeover may want it)
  if (mode == SeedMode::Proc) return "the /proc walk was asked for";
  if (!kernel_has_task_iter)
    return "the kernel has no BPF task iterator (iter/task, Linux 5.8+)";
  return "";
}

Result<int> create_iter_link(int prog_fd, const char* what) {
  int fd = bpf_link_create(prog_fd, 0, BPF_TRACE_ITER, nullptr);
  if (fd < 0) return Error::from_errno(errno, std::string("cannot create the link of ") + what);
  return fd;
}

namespace {

fp_seed_stats read_stats(const volatile fp_seed_stats* s) {
  fp_seed_stats out{};
  out.tasks = s->tasks;
  out.procs = s->procs;
  out.threads = s->threads;
  out.dstate = s->dstate;
  out.withdrawn = s->withdrawn;
  out.exiting = s->exiting;
  out.released = s->released;
  out.since_unknown = s->since_unknown;
  return out;
}

fp_seed_stats minus(const fp_seed_stats& a, const fp_seed_stats& b) {
  return {a.tasks - b.tasks,         a.procs - b.procs,       a.threads - b.threads,
          a.dstate - b.dstate,       a.withdrawn - b.withdrawn, a.exiting - b.exiting,
          a.released - b.released,   a.since_unknown - b.since_unknown};
}

double ms_since(uint64_t t0) { return double(monotonic_now_ns() - t0) / 1e6; }

}  // namespace

SeedStatus seed_with_iter(int link_fd, const volatile fp_seed_stats* stats) {
  SeedStatus s;
  s.method = SeedMethod::TaskIter;
  s.at_ns = monotonic_now_ns();
  const fp_seed_stats before = read_stats(stats);
  // The pass converts the scheduler's clock through this CPU's run queue,
  // brought up to date at every switch: a yield makes it fresh.
  sched_yield();
  int fd = bpf_iter_create(link_fd);
  if (fd < 0) {
    s.ok = false;
    s.error = std::string("cannot start the task iterator: ") + std::strerror(errno);
    return s;
  }
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
  }
  if (n < 0) {
    s.ok = false;
    s.error = std::string("the task iterator failed: ") + std::strerror(errno);
  }
  close(fd);
  s.found = minus(read_stats(stats), before);
  s.duration_ms = ms_since(s.at_ns);
  return s;
}

namespace {

bool is_pid(const char* name, uint32_t* out) {
  const char* end = name + std::strlen(name);
  auto [p, ec] = std::from_chars(name, end, *out);
  return ec == std::errc() && p == end && *out != 0;
}

// A process whose leader is a zombie is alive while any of its threads is.
bool alive(uint32_t pid, uint64_t start_ticks, const std::string& root) {
  auto st = read_proc_stat(pid_t(pid), root);
  if (!st || st->starttime_ticks != start_ticks) return false;
  if (st->state != 'Z' && st->state != 'X') return true;
  std::string dir = root + "/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return false;
  bool any = false;
  uint32_t tid = 0;
  while (dirent* e = readdir(d)) {
    if (!is_pid(e->d_name, &tid)) continue;
    auto t = read_proc_stat(pid_t(tid), dir);
    if (t && t->state != 'Z' && t->state != 'X') {
      any = true;
      break;
    }
  }
  closedir(d);
  return any;
}

// The resident set per mm counter (MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS,
// MM_SHMEMPAGES) in pages, from /proc/PID/status, as fp_store_rss keeps it.
void read_rss(const std::string& status, __s64* pages) {
  static const long page = sysconf(_SC_PAGESIZE);
  std::istringstream in(status);
  std::string key;
  int64_t kb = 0;
  while (in >> key) {
    int idx = key == "RssFile:" ? 0 : key == "RssAnon:" ? 1 : key == "VmSwap:" ? 2 : key == "RssShmem:" ? 3 : -1;
    if (idx >= 0 && in >> kb) pages[idx] = kb * 1024 / page;
    in.ignore(1 << 12, '\n');
  }
}

// Where the unified (v2) hierarchy is mounted, "" if nowhere.
std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (in >> dev >> dir >> type && std::getline(in, rest))
    if (type == "cgroup2") return dir;
  return "";
}

// The default hierarchy's cgroup id (its directory's inode, as the kernel's
// kernfs id) from the "0::PATH" line of /proc/PID/cgroup; 0 if unknown.
uint64_t cgroup_id_of(const std::string& cgroup_file, const std::string& mount) {
  std::istringstream in(cgroup_file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) != 0) continue;
    std::string path = line.substr(3);
    if (path == "/") return 1;  // the root cgroup's id
    struct stat st {};
    if (!mount.empty() && ::stat((mount + path).c_str(), &st) == 0) return st.st_ino;
    return 0;
  }
  return 0;
}

void raise_hwm(uint32_t* hwm, uint32_t slot) {
  std::atomic_ref<uint32_t> h(*hwm);
  uint32_t cur = h.load();
  while (slot + 1 > cur && !h.compare_exchange_weak(cur, slot + 1)) {
  }
}

// Gives a slot this walk made back, as fp_proc_release does.
bool release(const SeedMaps& m, uint32_t tgid, uint32_t slot, fp_proc p) {
  if (bpf_map_delete_elem(m.proc_index, &tgid) != 0) return false;  // the probe did
  p.tgid = 0;
  p.gen += 1;  // even: free
  bpf_map_update_elem(m.proc_slots, &slot, &p, BPF_ANY);
  bpf_map_update_elem(m.free_slots, nullptr, &slot, BPF_ANY);
  return true;
}

}  // namespace

SeedStatus seed_from_proc(const SeedMaps& m, const std::string& root) {
  SeedStatus s;
  s.method = SeedMethod::Proc;
  s.at_ns = monotonic_now_ns();
  const std::string cg2 = cgroup2_mount();
  DIR* d = opendir(root.c_str());
  if (!d) {
    s.ok = false;
    s.error = "cannot list " + root + ": " + std::strerror(errno);
    return s;
  }
  uint32_t tgid = 0;
  while (dirent* e = readdir(d)) {
    if (!is_pid(e->d_name, &tgid)) continue;
    s.found.tasks++;
    uint32_t slot = 0;
    if (bpf_map_lookup_elem(m.proc_index, &tgid, &slot) == 0) continue;  // the probe has it
    auto st = read_proc_stat(pid_t(tgid), root);
    if (!st || !alive(tgid, st->starttime_ticks, root)) continue;
    const std::string dir = root + "/" + std::to_string(tgid);
    auto status = read_small_file(dir + "/status", 1 << 16);
    auto cgroup = read_small_file(dir + "/cgroup", 1 << 16);

    if (bpf_map_lookup_and_delete_elem(m.free_slots, nullptr, &slot) != 0) {
      s.slots_full++;
      continue;
    }
    fp_proc p{};
    if (slot >= m.max_procs || bpf_map_lookup_elem(m.proc_slots, &slot, &p) != 0) {
      bpf_map_update_elem(m.free_slots, nullptr, &slot, BPF_ANY);
      continue;
    }
    const uint32_t gen = p.gen;
    p = fp_proc{};
    p.gen = gen + 1;  // odd: in use
    p.tgid = tgid;
    p.ppid = uint32_t(st->ppid);
    p.start_ns = start_ticks_to_mono_ns(st->starttime_ticks);
    p.first_seen_ns = monotonic_now_ns();
    std::memcpy(p.comm, st->comm.data(), std::min<size_t>(st->comm.size(), FP_COMM_LEN - 1));
    if (st->flags & kPfKthread) p.flags |= FP_PROC_KTHREAD;
    if (cgroup) p.cgroup_id = cgroup_id_of(*cgroup, cg2);
    if (status) read_rss(*status, p.rss_pages);
    bpf_map_update_elem(m.proc_slots, &slot, &p, BPF_ANY);
    if (bpf_map_update_elem(m.proc_index, &tgid, &slot, BPF_NOEXIST) != 0) {
      // the probe made it meanwhile (EEXIST), or the index is full
      if (errno != EEXIST) s.slots_full++;
      p.tgid = 0;
      p.gen = gen + 2;
      bpf_map_update_elem(m.proc_slots, &slot, &p, BPF_ANY);
      bpf_map_update_elem(m.free_slots, nullptr, &slot, BPF_ANY);
      continue;
    }
    raise_hwm(m.hwm, slot);
    // A process that finished exiting after the look above: its last
    // thread's final switch may have looked for the slot before it existed.
    if (!alive(tgid, st->starttime_ticks, root)) {
      if (release(m, tgid, slot, p)) s.found.released++;
      continue;
    }
    s.found.procs++;
  }
  closedir(d);
  s.duration_ms = ms_since(s.at_ns);
  return s;
}

}  // namespace fp

namespace fp {

// The pass at load or takeover: the iterator where this probe has one, the
// /proc walk otherwise (or when the iterator cannot run). After the iterator
// the walk runs too, for what the iterator did not visit: it skips every
// process with a slot, so it normally adds nothing, but some kernels hide a
// task from iterators (a sandbox's init here). The next refresh copies every
// used slot, so the first sample holds them all.
void Probe::seed(SeedMode mode) {
  if (mode == SeedMode::None) {
    seed_ = SeedStatus{};
    seed_.reason = "seeding was turned off";
    return;
  }
  auto walk = [&] {
    // hwm is CAS-ed by the probe too: through a writable mapping of the same page
    void* bss = mmap(nullptr, bss_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fds_.bss, 0);
    if (bss == MAP_FAILED) {
      SeedStatus failed;
      failed.method = SeedMethod::Proc;
      failed.ok = false;
      failed.error = std::string("cannot map the probe's .bss writable: ") + std::strerror(errno);
      return failed;
    }
    const size_t hwm_off = size_t(reinterpret_cast<const char*>(hwm_) - static_cast<const char*>(bss_map_));
    SeedMaps maps{fds_.proc_slots, fds_.proc_index, fds_.free_slots,
                  reinterpret_cast<uint32_t*>(static_cast<char*>(bss) + hwm_off), max_procs_};
    SeedStatus st = seed_from_proc(maps);
    munmap(bss, bss_map_len_);
    return st;
  };
  const bool iter = seed_link_ >= 0 && mode == SeedMode::Auto;
  if (iter) {
    seed_ = seed_with_iter(seed_link_, seed_stats_);
    seed_.reason = "the kernel has a BPF task iterator";
  }
  if (!iter || !seed_.ok) {
    std::string why = iter ? seed_.error : seed_iter_reason_;
    seed_ = walk();
    seed_.reason = why;
  } else {
    SeedStatus extra = walk();
    seed_.proc_added = extra.found.procs;
    seed_.slots_full += extra.slots_full;
    seed_.found.released += extra.found.released;
    seed_.duration_ms += extra.duration_ms;
    if (!extra.ok) spdlog::warn("the /proc walk after the task iterator failed: {}", extra.error);
  }
  resync_ = true;
  const fp_seed_stats& f = seed_.found;
  if (!seed_.ok) spdlog::warn("seeding the processes alive at start ({}): {}", seed_method_name(seed_.method), seed_.error);
  spdlog::info("seeded {} processes (+{} from /proc), {} threads ({} in D since before the probe) of {} tasks "
               "with {} in {:.1f} ms",
               f.procs, seed_.proc_added, f.threads, f.dstate, f.tasks, seed_method_name(seed_.method),
               seed_.duration_ms);
}

}  // namespace fp
