// Process primitives for the handling stage: reading /proc/PID/stat, and a
// pidfd handle that is verified to be the process the probe saw (pid + start
// time) before anything is sent through it, so a reused pid is never hit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probe/sample.h"
#include "util/result.h"

namespace fp {

class StopRecord;

// PF_KTHREAD from include/linux/sched.h: the task is a kernel thread.
inline constexpr uint32_t kPfKthread = 0x00200000;

// The fields of /proc/PID/stat the handling stage needs.
struct ProcStat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
  pid_t session = 0;             // field 6
  uint32_t flags = 0;            // field 9, PF_* bits
  uint64_t cpu_ticks = 0;        // fields 14 + 15 (utime + stime, every thread), clock ticks
  uint64_t starttime_ticks = 0;  // field 22, clock ticks since boot (CLOCK_BOOTTIME)
};

// Parses the content of /proc/PID/stat. The comm is everything between the
// first '(' and the last ')' (a comm may itself contain ") " and spaces).
Result<ProcStat> parse_proc_stat(std::string_view content);
// Reads and parses PROC_ROOT/PID/stat. A vanished process is Error{ESRCH}.
Result<ProcStat> read_proc_stat(pid_t pid, const std::string& proc_root = "/proc");
// Converts field 22 to the probe's clock (see process_start_ns in spawn.h).
uint64_t start_ticks_to_mono_ns(uint64_t ticks);

// Reads /proc/PID/stat and checks that it is still the process of `key`.
// Errors: "pid N has exited" and "pid N is now another process (started at
// X, expected Y)", both with code ESRCH; a key without a start time is EINVAL.
Result<ProcStat> verify_process(const ProcKey& key, const std::string& proc_root = "/proc");

// The raw system calls: glibc 2.36's <sys/pidfd.h> declares its wrappers
// without extern "C", so C++ cannot link them.
int pidfd_open_fd(pid_t pid);
int pidfd_signal(int pidfd, int sig);

// Small /proc readers with errno-carrying errors (a read of a vanished
// process fails with ESRCH or ENOENT; both are reported as such).
Result<std::string> read_small_file(const std::string& path, size_t cap = 1u << 20);
Result<std::string> read_link_path(const std::string& path);

// An owned pidfd that refers to one verified process.
class ProcessHandle {
 public:
  // pidfd_open(key.tgid), then checks the start time in /proc: once the
  // pidfd is open it pins that process, and if /proc still shows the start
  // time the probe saw, the pidfd is that process. Errors:
  //   "pid N has exited" (code ESRCH),
  //   "pid N is now another process (started at X, expected Y)" (code ESRCH).
  static Result<ProcessHandle> open(const ProcKey& key, const std::string& proc_root = "/proc");

  ProcessHandle(ProcessHandle&& other) noexcept;
  ProcessHandle& operator=(ProcessHandle&& other) noexcept;
  ProcessHandle(const ProcessHandle&) = delete;
  ProcessHandle& operator=(const ProcessHandle&) = delete;
  ~ProcessHandle();

  // pidfd_send_signal. Signalling a process that has exited but was not
  // reaped yet succeeds (and does nothing), as kill(2) does.
  Result<void> signal(int sig);
  // Whether the process has exited (the pidfd polls readable). No wait.
  bool exited() const;
  // Waits up to `timeout` for the exit; true when it exited.
  bool wait_exit(std::chrono::milliseconds timeout) const;
  // SIGTERM (and SIGCONT, so a stopped process can act on it), up to `grace`
  // for the exit, then SIGKILL and up to kKillWait more. The detail says
  // which signal ended it; an error when it outlives SIGKILL (stuck in D state).
  Result<std::string> terminate(std::chrono::milliseconds grace);

  int fd() const { return fd_; }
  const ProcKey& key() const { return key_; }

  static constexpr std::chrono::milliseconds kKillWait{5000};

 private:
  ProcessHandle(int fd, ProcKey key) : fd_(fd), key_(key) {}
  int fd_ = -1;
  ProcKey key_;
};

// Every process in PROC_ROOT by pid (those that vanish during the scan are left out).
std::map<pid_t, ProcStat> scan_processes(const std::string& proc_root = "/proc");
// Waits, at most `limit`, until every member shows as stopped or dead in
// /proc: a stopped process cannot fork, and the children it forked before
// stopping are in /proc by then, so the next scan is complete.
void wait_stopped(const std::vector<ProcessHandle>& members, const std::string& proc_root,
                  std::chrono::milliseconds limit = std::chrono::milliseconds(200));

// Returns a reason when a process must be left alone (SafetyGuard::refuse fits).
using RefuseFn = std::function<std::optional<std::string>(const ProcKey&, std::string_view comm)>;

// SIGKILL to a process and all its descendants (found through the ppid links
// in /proc), each through a verified pidfd. The tree is frozen first with
// SIGSTOP, leaf-ward round by round until a scan finds nothing new, so a fork
// bomb cannot add children while it is walked; then the root is killed first
// and the rest after it. Descendants `refuse` objects to are left alone with
// their subtrees (and named in the detail). Descendants already reparented
// away from the tree (orphans of an exited middle process) cannot be found.
// `stops` (when given) has each process written down before it is stopped and
// is cleared once all are killed: a daemon that dies in between leaves the
// record for the next one to continue them (act/stop_record.h).
Result<std::string> kill_tree(const ProcKey& root, const std::string& proc_root = "/proc",
                              const RefuseFn& refuse = nullptr, StopRecord* stops = nullptr);

// Signals through verified pidfds; the real implementation of the throttler's
// Signaller (user/act/throttle.h) for the SIGSTOP/SIGCONT duty cycle.
class PidfdSignaller {
 public:
  explicit PidfdSignaller(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  Result<void> send(const ProcKey& key, int sig);

 private:
  std::string proc_root_;
};

}  // namespace fp
