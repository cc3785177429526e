// Throttling a process: the backend interface, the signal sender it needs,
// and the choice of backend for this host (cgroup v2, cgroup v1, or a
// SIGSTOP/SIGCONT duty cycle when neither is usable).
//
// A cgroup throttle stays in place: in the process's own cgroup when it is
// alone there, else in a group below that cgroup (cgroup_throttle.h), so
// every limit it had still applies; release restores what was there. The
// table of throttled processes is kept in a JSON state file so a restarted
// daemon can still undo what the previous one did.
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

// A throttled process that got out from under its throttle (a SIGCONT sent
// during a SIGSTOP phase by itself, a helper or a shell): the handler
// escalates to the next rung at once.
struct ThrottleEvasion {
  ProcKey key;
  std::string detail;
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
  // "cpu.max=20000 100000 in /app.service (its own cgroup, where it is alone)".
  virtual Result<std::string> throttle(const ProcKey& key, const ThrottleLimits& l) = 0;
  // A group (fork_bomb's) after key was throttled: moves `pids` (its other
  // members, stopped by the caller so none forks meanwhile) to where key's
  // limits are, so the whole group is under them; release puts them back
  // with key (a cgroup where key was alone keeps them: there is no other
  // place of theirs on record). Only backends that move processes can.
  virtual Result<std::string> add_members(const ProcKey& key, const std::vector<pid_t>& pids) {
    (void)key, (void)pids;
    return Error{EOPNOTSUPP, std::string(name()) + " cannot throttle a group of processes"};
  }
  // Whether key's throttle still holds processes: a group's throttle lives
  // on after the process it is named after has exited.
  virtual bool members_left(const ProcKey& key) const {
    (void)key;
    return false;
  }
  // Undoes the throttle: the old limit values come back, the process goes
  // back where it was, groups made for it are removed. A process that exited
  // meanwhile just gets its groups removed.
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
  // Evasions seen since the last call (each once).
  virtual std::vector<ThrottleEvasion> take_evasions() { return {}; }
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
