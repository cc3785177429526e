// Throttling a process: the backend interface, the signal sender it needs,
// and the choice of backend for this host (cgroup v2, cgroup v1, or a
// SIGSTOP/SIGCONT duty cycle when neither is usable).
//
// A throttle moves the whole process into a group faultprobe owns,
// <root>/faultprobe/p<tgid>-<start_ns>, with the limits; release moves it back
// to the cgroup(s) it came from and removes the group. The table of throttled
// processes is kept in a JSON state file so a restarted daemon can still undo
// what the previous one did.
//
// Backends do not check the process's identity: the caller (the actuator)
// re-checks pid + start time through a pidfd right before calling.
// Not thread-safe: one caller (the daemon loop) drives a backend.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "act/cgroup.h"
#include "act/clock.h"
#include "config/config.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

// Sends a signal to exactly the process `key` names (the real one goes
// through a pidfd and refuses a pid that now belongs to another process).
// A process that is gone is an Error with code ESRCH.
class Signaller {
 public:
  virtual ~Signaller() = default;
  virtual Result<void> send(const ProcKey& key, int sig) = 0;
};

class ThrottleBackend {
 public:
  virtual ~ThrottleBackend() = default;
  // "cgroup2", "cgroup1" or "signal".
  virtual const char* name() const = 0;
  // Whether this backend can apply every limit in l; why says what is missing.
  virtual bool supports(const ThrottleLimits& l, std::string* why) const = 0;
  // Applies l (a process already throttled gets its limits replaced by l;
  // limits no longer in l are lifted). Returns what was done, e.g.
  // "cpu.max=20000 100000 in /faultprobe/p123-456 (was /user.slice)".
  virtual Result<std::string> throttle(const ProcKey& key, const ThrottleLimits& l) = 0;
  // A group (fork_bomb's): the same throttle for every pid in `pids`, all in
  // key's group; the original cgroups (where release puts them back) are
  // read from `owner`, one of them, alive. The members are expected stopped
  // (a member forking meanwhile leaves a child outside). Only backends that
  // move processes into a group can.
  virtual Result<std::string> throttle_group(const ProcKey& key, pid_t owner, const std::vector<pid_t>& pids,
                                             const ThrottleLimits& l) {
    (void)key, (void)owner, (void)pids, (void)l;
    return Error{EOPNOTSUPP, std::string(name()) + " cannot throttle a group of processes"};
  }
  // Whether key's group still holds processes: a group throttle lives on
  // after the process it is named after has exited.
  virtual bool members_left(const ProcKey& key) const {
    (void)key;
    return false;
  }
  // Undoes the throttle: the process goes back where it was, the group is
  // removed. A process that exited meanwhile just gets its group removed.
  // A key that is not throttled is an Error with code ENOENT.
  virtual Result<std::string> release(const ProcKey& key) = 0;
  virtual bool throttled(const ProcKey& key) const = 0;
  virtual std::vector<ProcKey> throttled_keys() const = 0;
  // Timed work (the duty cycle); cgroup backends have none. The daemon calls
  // tick() no later than next_deadline_ns() (UINT64_MAX: nothing pending).
  virtual void tick(uint64_t now_ns) { (void)now_ns; }
  virtual uint64_t next_deadline_ns() const { return std::numeric_limits<uint64_t>::max(); }
  // Releases every throttle (daemon shutdown), logging failures.
  virtual void release_all() = 0;
};

// Picks cgroup v2 when its cpu controller is available, else cgroup v1 when
// cpu is mounted there, else the signal duty cycle; why says which and why
// (also logged). state_path: the JSON table of throttles ("" = not persisted);
// proc_root for tests.
std::unique_ptr<ThrottleBackend> choose_throttle_backend(const CgroupLayout& layout, Signaller& signaller,
                                                         Clock& clock, std::string* why,
                                                         const std::string& state_path = "",
                                                         const std::string& proc_root = "/proc");

// The cpu quota for a share of one CPU, in microseconds per kCpuPeriodUs:
// share * period, at least kMinCpuQuotaUs (the kernel's minimum).
inline constexpr uint64_t kCpuPeriodUs = 100000;
inline constexpr uint64_t kMinCpuQuotaUs = 1000;
uint64_t cpu_quota_us(double share);

}  // namespace fp
