// The processes the handling stage must never touch, whatever a policy says:
// pid 1, kernel threads, faultprobed itself and the processes it descends
// from (its shell, sshd, the service manager), the configured
// protected_comms (by name AND executable, detect/protection.h: a process
// that renamed itself is fair game), and a pid that now belongs to another
// process.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/protection.h"
#include "probe/sample.h"

namespace fp {

class SafetyGuard {
 public:
  // `self` is faultprobed's pid (getpid()); its ancestors are read from
  // PROC_ROOT at construction. `protected_comms` are exact names or fnmatch
  // globs ("postgres*"), or executable paths, as in Config::protected_comms.
  SafetyGuard(pid_t self, std::string proc_root = "/proc", std::vector<std::string> protected_comms = {});

  // Why the process must be left alone, or nullopt when it may be acted on.
  // `comm` is the name the detector saw; the current name in /proc is checked
  // too. Reasons are short phrases for an action record's detail, e.g.
  // "protected: pid 1", "protected: ancestor of faultprobed (sshd, pid 812)".
  std::optional<std::string> refuse(const ProcKey& key, std::string_view comm) const;

  // For a process that is gone (a crash, an OOM kill): nothing can hit it any
  // more, so only its name (protected_comms) and faultprobed's own pid stop a
  // restart or restore of it. Its executable cannot be checked any more: the
  // name alone refuses (a respawn as root of what looked like sshd is the
  // mistake to avoid).
  std::optional<std::string> refuse_gone(const ProcKey& key, std::string_view comm) const;
  // On config reload.
  void set_protected(std::vector<std::string> protected_comms) { protection_.set_entries(std::move(protected_comms)); }
  const std::vector<std::string>& protected_comms() const { return protection_.entries(); }

  // Re-reads the ppid chain (after faultprobed was reparented, say).
  void refresh_ancestors();

  struct Ancestor {
    pid_t pid = 0;
    std::string comm;
    uint64_t start_ns = 0;  // 0 when /proc did not say
  };
  const std::vector<Ancestor>& ancestors() const { return ancestors_; }

 private:
  pid_t self_;
  std::string proc_root_;
  Protection protection_;
  std::vector<Ancestor> ancestors_;  // parent first, up to (not including) pid 1
};

}  // namespace fp
