#include "act/safety.h"

#include <set>

#include <spdlog/spdlog.h>

#include "act/process.h"
#include "act/spawn.h"

namespace fp {

namespace {
constexpr pid_t kKthreadd = 2;
}  // namespace

SafetyGuard::SafetyGuard(pid_t self, std::string proc_root, std::vector<std::string> protected_comms)
    : self_(self),
      proc_root_(std::move(proc_root)),
      protection_(std::move(protected_comms),
                  [root = proc_root_](const ProcKey& k) { return read_exe_identity(k, root); }) {
  refresh_ancestors();
}

void SafetyGuard::refresh_ancestors() {
  std::vector<Ancestor> chain;
  std::set<pid_t> seen{self_};
  auto st = read_proc_stat(self_, proc_root_);
  if (!st) {
    // Without the chain the guard cannot protect faultprobed's parents; say so loudly.
    spdlog::warn("safety: cannot read faultprobed's own /proc entry ({}); its ancestors are not protected",
                 st.error().message);
    ancestors_.clear();
    return;
  }
  pid_t pid = st->ppid;
  // pid 1 (and 0, the parent of pid 1 and of kthreadd) end the walk; pid 1 is protected anyway.
  while (pid > 1 && seen.insert(pid).second) {
    auto parent = read_proc_stat(pid, proc_root_);
    if (!parent) {
      // Still protect the pid: better a refused action than a killed login shell.
      chain.push_back(Ancestor{pid, "?", 0});
      break;
    }
    chain.push_back(Ancestor{pid, parent->comm, start_ticks_to_mono_ns(parent->starttime_ticks)});
    pid = parent->ppid;
  }
  ancestors_ = std::move(chain);
}

std::optional<std::string> SafetyGuard::refuse_gone(const ProcKey& key, std::string_view comm) const {
  if (key.tgid <= 2 || pid_t(key.tgid) == self_) return "protected: pid " + std::to_string(key.tgid);
  auto entry = protection_.named(comm);
  if (!entry) return std::nullopt;
  std::string reason = "protected: comm \"" + std::string(comm) + "\"";
  if (*entry != comm) reason += " matches \"" + *entry + "\"";
  return reason + " (protected_comms; gone, so its executable cannot be checked)";
}

std::optional<std::string> SafetyGuard::refuse(const ProcKey& key, std::string_view comm) const {
  const pid_t pid = pid_t(key.tgid);
  const std::string spid = std::to_string(key.tgid);
  if (pid <= 0) return "invalid pid " + spid;
  if (pid == 1) return "protected: pid 1";
  if (pid == kKthreadd) return "protected: kernel thread (kthreadd, pid 2)";
  if (pid == self_) return "protected: faultprobed itself (pid " + spid + ")";
  for (const auto& a : ancestors_) {
    // A dead ancestor's pid may have been reused by an unrelated process: that one is fair game.
    if (a.pid == pid && (a.start_ns == 0 || same_start(a.start_ns, key.start_ns))) {
      return "protected: ancestor of faultprobed (" + a.comm + ", pid " + spid + ")";
    }
  }

  // From here on the process must still be the one the detector saw.
  auto st = verify_process(key, proc_root_);
  if (!st) return st.error().message;
  if ((st->flags & kPfKthread) != 0 || st->ppid == kKthreadd) {
    return "protected: kernel thread (" + st->comm + ", pid " + spid + ")";
  }
  // Either name (the detector's may be from before an exec; /proc's is now),
  // and the executable /proc shows now.
  if (auto why = protection_.protects(key, comm)) return why;
  if (st->comm != comm) {
    if (auto why = protection_.protects(key, st->comm)) return why;
  }
  if (std::string why = protection_.pretender(key, st->comm); !why.empty()) spdlog::info("safety: pid {}: {}", key.tgid, why);
  return std::nullopt;
}

}  // namespace fp
