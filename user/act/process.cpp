#include "act/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "act/spawn.h"
#include "act/stop_record.h"
#include "util/file.h"
#include "util/keepalive.h"

namespace fp {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

uint64_t ticks_per_second() {
  static const uint64_t hz = [] {
    long v = ::sysconf(_SC_CLK_TCK);
    return v > 0 ? uint64_t(v) : 100ull;
  }();
  return hz;
}

// CLOCK_BOOTTIME - CLOCK_MONOTONIC. Read between two monotonic reads; a
// preemption in between (milliseconds on a loaded host) would skew it, so
// the tightest of a few tries counts.
uint64_t suspended_ns() {
  uint64_t best_window = UINT64_MAX, best = 0;
  for (int i = 0; i < 8; ++i) {
    uint64_t mono1 = clock_ns(CLOCK_MONOTONIC);
    uint64_t boot = clock_ns(CLOCK_BOOTTIME);
    uint64_t mono2 = clock_ns(CLOCK_MONOTONIC);
    uint64_t mono = mono1 + (mono2 - mono1) / 2;
    if (mono2 - mono1 < best_window) {
      best_window = mono2 - mono1;
      best = boot > mono ? boot - mono : 0;
    }
    if (best_window < 20'000) break;
  }
  return best;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// Monotonic nanoseconds as seconds since boot with millisecond precision, for messages.
std::string mono_str(uint64_t ns) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%llu.%03llus", static_cast<unsigned long long>(ns / 1'000'000'000ull),
                static_cast<unsigned long long>(ns / 1'000'000ull % 1000));
  return buf;
}

long long elapsed_ms(steady_clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(steady_clock::now() - since).count();
}

Error exited_error(pid_t pid) { return Error{ESRCH, "pid " + std::to_string(pid) + " has exited"}; }

}  // namespace

int pidfd_open_fd(pid_t pid) { return int(::syscall(SYS_pidfd_open, pid, 0u)); }

int pidfd_signal(int pidfd, int sig) { return int(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u)); }

// ---- /proc readers ----

Result<std::string> read_small_file(const std::string& path, size_t cap) { return read_file(path, cap); }

Result<std::string> read_link_path(const std::string& path) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return Error::from_errno(errno, "cannot readlink " + path);
    if (size_t(n) < buf.size()) {
      buf.resize(size_t(n));
      return buf;
    }
    if (buf.size() >= 65536) return Error{ENAMETOOLONG, "link target of " + path + " is too long"};
    buf.resize(buf.size() * 2);
  }
}

Result<ProcStat> parse_proc_stat(std::string_view content) {
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ... starttime(22) ..."
  size_t open = content.find('(');
  size_t close = content.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return Error{EINVAL, "no \"(comm)\" in stat line"};
  }
  ProcStat st;
  std::string_view pid_part = content.substr(0, open);
  while (!pid_part.empty() && pid_part.back() == ' ') pid_part.remove_suffix(1);
  auto [pend, pec] = std::from_chars(pid_part.data(), pid_part.data() + pid_part.size(), st.pid);
  if (pec != std::errc() || pend != pid_part.data() + pid_part.size()) return Error{EINVAL, "bad pid in stat line"};
  st.comm = std::string(content.substr(open + 1, close - open - 1));

  // Fields after the comm, numbered from 3 (state).
  std::vector<std::string_view> fields;
  std::string_view rest = content.substr(close + 1);
  size_t pos = 0;
  while (fields.size() < 20 && pos < rest.size()) {
    while (pos < rest.size() && (rest[pos] == ' ' || rest[pos] == '\n')) ++pos;
    size_t end = pos;
    while (end < rest.size() && rest[end] != ' ' && rest[end] != '\n') ++end;
    if (end > pos) fields.push_back(rest.substr(pos, end - pos));
    pos = end;
  }
  if (fields.size() < 20)
    return Error{EINVAL, "stat line has " + std::to_string(fields.size() + 2) + " fields, need 22"};
  auto field = [&](int n) { return fields[size_t(n - 3)]; };
  auto number = [&](int n, auto& out) {
    std::string_view f = field(n);
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), out);
    return ec == std::errc() && end == f.data() + f.size();
  };
  if (field(3).size() != 1) return Error{EINVAL, "bad state field in stat line"};
  st.state = field(3)[0];
  if (!number(4, st.ppid) || !number(6, st.session) || !number(9, st.flags) || !number(22, st.starttime_ticks)) {
    return Error{EINVAL, "bad ppid, session, flags or starttime in stat line"};
  }
  uint64_t utime = 0, stime = 0;
  if (number(14, utime) && number(15, stime)) st.cpu_ticks = utime + stime;
  return st;
}

Result<ProcStat> read_proc_stat(pid_t pid, const std::string& proc_root) {
  std::string path = proc_root + "/" + std::to_string(pid) + "/stat";
  auto content = read_small_file(path, 4096);
  if (!content) {
    // ENOENT: no such pid; ESRCH: it went away between open and read.
    if (content.error().code == ENOENT || content.error().code == ESRCH) return exited_error(pid);
    return content.error();
  }
  auto st = parse_proc_stat(*content);
  if (!st) return Error{st.error().code, "cannot parse " + path + ": " + st.error().message};
  return st;
}

uint64_t start_ticks_to_mono_ns(uint64_t ticks) {
  const uint64_t hz = ticks_per_second();
  uint64_t boot_ns = ticks / hz * 1'000'000'000ull + ticks % hz * 1'000'000'000ull / hz;
  // The time spent suspended is the difference between the two clocks now.
  // A process that started before the latest suspend gets a start time too
  // early by the suspensions since; same_start() then refuses it (fail safe).
  uint64_t suspended = suspended_ns();
  return boot_ns > suspended ? boot_ns - suspended : 0;
}

// Declared in act/spawn.h; lives here with the other /proc readers.
Result<uint64_t> process_start_ns(pid_t pid, const std::string& proc_root) {
  auto st = read_proc_stat(pid, proc_root);
  if (!st) return st.error();
  return start_ticks_to_mono_ns(st->starttime_ticks);
}

bool same_start(uint64_t probe_start_ns, uint64_t proc_start_ns) {
  // /proc truncates to a clock tick; the suspend correction adds a little jitter.
  const uint64_t tolerance = 1'000'000'000ull / ticks_per_second() + 2'000'000ull;
  uint64_t diff = probe_start_ns > proc_start_ns ? probe_start_ns - proc_start_ns : proc_start_ns - probe_start_ns;
  return diff <= tolerance;
}

Result<ProcStat> verify_process(const ProcKey& key, const std::string& proc_root) {
  const pid_t pid = pid_t(key.tgid);
  if (pid <= 0) return Error{EINVAL, "invalid pid " + std::to_string(key.tgid)};
  if (key.start_ns == 0) {
    return Error{EINVAL, "no start time for pid " + std::to_string(pid) + " (cannot rule out a reused pid)"};
  }
  auto st = read_proc_stat(pid, proc_root);
  if (!st) return st.error();
  uint64_t start = start_ticks_to_mono_ns(st->starttime_ticks);
  if (!same_start(key.start_ns, start)) {
    return Error{ESRCH, "pid " + std::to_string(pid) + " is now another process (started at " + mono_str(start) +
                            ", expected " + mono_str(key.start_ns) + ")"};
  }
  return st;
}

// ---- ProcessHandle ----

Result<ProcessHandle> ProcessHandle::open(const ProcKey& key, const std::string& proc_root) {
  const pid_t pid = pid_t(key.tgid);
  if (pid <= 0) return Error{EINVAL, "invalid pid " + std::to_string(key.tgid)};
  int fd = pidfd_open_fd(pid);
  if (fd < 0) {
    if (errno == ESRCH) return exited_error(pid);
    return Error::from_errno(errno, "pidfd_open(" + std::to_string(pid) + ")");
  }
  // The pidfd pins the process that had the pid at pidfd_open. The expected
  // process started before that, so if /proc shows its start time now, the
  // pid was never given to anyone else in between: the pidfd is that process.
  ProcessHandle h(fd, key);
  if (auto st = verify_process(key, proc_root); !st) return st.error();
  return h;
}

ProcessHandle::ProcessHandle(ProcessHandle&& other) noexcept : fd_(other.fd_), key_(other.key_) { other.fd_ = -1; }

ProcessHandle& ProcessHandle::operator=(ProcessHandle&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    key_ = other.key_;
    other.fd_ = -1;
  }
  return *this;
}

ProcessHandle::~ProcessHandle() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> ProcessHandle::signal(int sig) {
  if (pidfd_signal(fd_, sig) != 0) {
    if (errno == ESRCH) return exited_error(pid_t(key_.tgid));
    return Error::from_errno(errno,
                             "pidfd_send_signal(pid " + std::to_string(key_.tgid) + ", " + signal_name(sig) + ")");
  }
  return {};
}

bool ProcessHandle::exited() const { return wait_exit(milliseconds(0)); }

bool ProcessHandle::wait_exit(milliseconds timeout) const {
  // A pidfd polls readable once the whole thread group has exited (zombie or reaped).
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    // Rounded up: poll must not return before the deadline.
    auto left = std::chrono::ceil<milliseconds>(deadline - steady_clock::now());
    if (left.count() < 0) left = milliseconds(0);
    // Slices of at most 500 ms: the watchdog is pinged while a grace runs out.
    const milliseconds slice = std::min(left, milliseconds(500));
    if (slice.count() > 0) keepalive();
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, int(slice.count()));
    if (r > 0) return (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    if (r == 0 && slice == left) return false;
    if (r == 0) continue;
    if (errno != EINTR) return false;
  }
}

Result<std::string> ProcessHandle::terminate(milliseconds grace) {
  const std::string who = "pid " + std::to_string(key_.tgid);
  if (exited()) return who + " had already exited";
  if (auto r = signal(SIGTERM); !r) {
    if (r.error().code == ESRCH) return who + " had already exited";
    return r.error();
  }
  // A stopped process (e.g. by a throttling duty cycle) acts on SIGTERM only once continued.
  (void)signal(SIGCONT);
  const auto start = steady_clock::now();
  if (wait_exit(grace)) return who + " exited after SIGTERM (" + std::to_string(elapsed_ms(start)) + " ms)";
  if (auto r = signal(SIGKILL); !r && r.error().code != ESRCH) return r.error();
  if (wait_exit(kKillWait)) {
    return who + " ignored SIGTERM for " + std::to_string(grace.count()) + " ms; killed with SIGKILL";
  }
  return Error{ETIMEDOUT,
               who + " still runs " + std::to_string(kKillWait.count()) + " ms after SIGKILL (uninterruptible sleep?)"};
}

// ---- scanning and freezing ----

std::map<pid_t, ProcStat> scan_processes(const std::string& proc_root) {
  std::map<pid_t, ProcStat> out;
  DIR* dir = ::opendir(proc_root.c_str());
  if (!dir) return out;
  while (dirent* de = ::readdir(dir)) {
    pid_t pid = 0;
    const char* name = de->d_name;
    auto [end, ec] = std::from_chars(name, name + std::strlen(name), pid);
    if (ec != std::errc() || *end != '\0' || pid <= 0) continue;
    auto st = read_proc_stat(pid, proc_root);
    if (st) out.emplace(pid, std::move(*st));
  }
  ::closedir(dir);
  return out;
}

void wait_stopped(const std::vector<ProcessHandle>& members, const std::string& proc_root, milliseconds limit) {
  const auto deadline = steady_clock::now() + limit;
  for (;;) {
    bool all = true;
    for (const auto& m : members) {
      auto st = read_proc_stat(pid_t(m.key().tgid), proc_root);
      if (st && st->state != 'T' && st->state != 't' && st->state != 'Z' && st->state != 'X') {
        all = false;
        break;
      }
    }
    if (all || steady_clock::now() >= deadline) return;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

// ---- kill_tree ----

Result<std::string> kill_tree(const ProcKey& root, const std::string& proc_root, const RefuseFn& refuse,
                              StopRecord* stops) {
  // Written down before they are stopped; a failure to write costs the
  // crash-safety of the next few milliseconds, not the kill.
  auto record = [&](const std::vector<ProcKey>& keys) {
    if (!stops || keys.empty()) return;
    if (auto r = stops->add(keys); !r) spdlog::warn("kill_tree: cannot record the stopped pids: {}", r.error().message);
  };
  auto root_stat = read_proc_stat(pid_t(root.tgid), proc_root);
  if (!root_stat) return root_stat.error();
  if (refuse) {
    if (auto why = refuse(root, root_stat->comm)) return Error{EPERM, "refused: " + *why};
  }
  auto root_handle = ProcessHandle::open(root, proc_root);
  if (!root_handle) return root_handle.error();
  record({root});
  if (auto r = root_handle->signal(SIGSTOP); !r) {
    if (stops) stops->clear();
    return r.error();
  }

  std::vector<ProcessHandle> members;
  members.push_back(std::move(root_handle.value()));
  std::set<pid_t> member_pids{pid_t(root.tgid)};
  std::set<pid_t> skipped_pids;
  std::vector<std::string> skipped;

  // Freeze the tree, one generation more per round, until a scan of a fully
  // stopped tree finds nothing new. Bounded: a tree deeper than this is
  // killed as far as it was found.
  for (int round = 0; round < 64; ++round) {
    wait_stopped(members, proc_root);
    std::vector<ProcessHandle> fresh;
    for (const auto& [pid, e] : scan_processes(proc_root)) {
      if (!member_pids.count(e.ppid) || member_pids.count(pid) || skipped_pids.count(pid)) continue;
      ProcKey key{uint32_t(pid), start_ticks_to_mono_ns(e.starttime_ticks)};
      auto h = ProcessHandle::open(key, proc_root);
      if (!h) continue;  // exited (or replaced) since the scan
      if (refuse) {
        if (auto why = refuse(key, e.comm)) {
          skipped_pids.insert(pid);
          skipped.push_back("pid " + std::to_string(pid) + " (" + *why + ")");
          continue;
        }
      }
      fresh.push_back(std::move(h.value()));
    }
    if (fresh.empty()) break;
    std::vector<ProcKey> keys;
    for (const auto& h : fresh) keys.push_back(h.key());
    record(keys);
    bool grew = false;
    for (auto& h : fresh) {
      if (!h.signal(SIGSTOP)) continue;
      member_pids.insert(pid_t(h.key().tgid));
      members.push_back(std::move(h));
      grew = true;
    }
    if (!grew) break;
  }

  // Root first, so it cannot react to its children's deaths, then the rest.
  std::vector<std::string> failed;
  for (auto& m : members) {
    if (auto r = m.signal(SIGKILL); !r && r.error().code != ESRCH) failed.push_back(r.error().message);
  }
  // A SIGKILLed process is no longer stopped: nothing for a successor to continue.
  if (stops) stops->clear();
  const auto deadline = steady_clock::now() + ProcessHandle::kKillWait;
  std::vector<pid_t> survivors;
  for (auto& m : members) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (!m.wait_exit(std::max(left, milliseconds(0)))) survivors.push_back(pid_t(m.key().tgid));
  }
  if (!survivors.empty() && survivors.front() == pid_t(root.tgid)) {
    return Error{ETIMEDOUT, "pid " + std::to_string(root.tgid) + " still runs after SIGKILL (uninterruptible sleep?)"};
  }

  std::string detail = "killed pid " + std::to_string(root.tgid) + " (" + root_stat->comm + ")";
  if (members.size() > 1) detail += " and " + std::to_string(members.size() - 1) + " descendant(s)";
  if (!skipped.empty()) {
    detail += "; left alone:";
    for (const auto& s : skipped) detail += " " + s;
  }
  if (!survivors.empty()) {
    detail += "; still running after SIGKILL:";
    for (pid_t p : survivors) detail += " " + std::to_string(p);
  }
  for (const auto& f : failed) detail += "; " + f;
  spdlog::debug("kill_tree: {}", detail);
  return detail;
}

// ---- PidfdSignaller ----

Result<void> PidfdSignaller::send(const ProcKey& key, int sig) {
  auto h = ProcessHandle::open(key, proc_root_);
  if (!h) return h.error();
  return h->signal(sig);
}

}  // namespace fp
