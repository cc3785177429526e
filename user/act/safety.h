// The processes the handling stage must never touch, whatever a policy says:
// pid 1, kernel threads, faultprobed itself and the processes it descends
// from (its shell, sshd, the service manager), the configured
// protected_comms, and a pid that now belongs to another process.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probe/sample.h"

namespace fp {

class SafetyGuard {
 public:
  // `self` is faultprobed's pid (getpid()); its ancestors are read from
  // PROC_ROOT at construction. `protected_comms` are exact names or fnmatch
  // globs ("postgres*") as in Config::protected_comms.
  SafetyGuard(pid_t self, std::string proc_root = "/proc", std::vector<std::string> protected_comms = {});

  // Why the process must be left alone, or nullopt when it may be acted on.
  // `comm` is the name the detector saw; the current name in /proc is checked
  // too. Reasons are short phrases for an action record's detail, e.g.
  // "protected: pid 1", "protected: ancestor of faultprobed (sshd, pid 812)".
  std::optional<std::string> refuse(const ProcKey& key, std::string_view comm) const;

  // For a process that is gone (a crash, an OOM kill): nothing can hit it any
  // more, so only its name (protected_comms) and faultprobed's own pid stop a
  // restart or restore of it.
  std::optional<std::string> refuse_gone(const ProcKey& key, std::string_view comm) const {
    if (key.tgid <= 2 || pid_t(key.tgid) == self_) return "protected: pid " + std::to_string(key.tgid);
    return protected_match(comm);
  }
  // On config reload.
  void set_protected(std::vector<std::string> protected_comms) { protected_ = std::move(protected_comms); }
  const std::vector<std::string>& protected_comms() const { return protected_; }

  // Re-reads the ppid chain (after faultprobed was reparented, say).
  void refresh_ancestors();

  struct Ancestor {
    pid_t pid = 0;
    std::string comm;
    uint64_t start_ns = 0;  // 0 when /proc did not say
  };
  const std::vector<Ancestor>& ancestors() const { return ancestors_; }

 private:
  std::optional<std::string> protected_match(std::string_view comm) const;

  pid_t self_;
  std::string proc_root_;
  std::vector<std::string> protected_;
  std::vector<Ancestor> ancestors_;  // parent first, up to (not including) pid 1
};

}  // namespace fp
