// protected_comms: processes never blamed (detection) nor acted on
// (handling). A name is the one thing a process chooses freely (prctl
// PR_SET_NAME, or a copy of any program under that name), so a name alone
// protects nothing: the executable must be that program's too.
//
// An entry protects a live process when
//  - the entry is a name or glob ("sshd", "postgres*"): it matches the
//    process's comm AND the file name of its executable (cut to 15 bytes as
//    the kernel cuts comm), or
//  - the entry is an absolute path or glob ("/usr/sbin/sshd"): it matches the
//    executable's path (for a program started through a link of another name),
// and the executable is trusted: owned by root (or by faultprobed's own user),
// not writable by group or others, in a directory that is neither. So a
// renamed process, a copy in /tmp or $HOME, or `exec -a NAME` (argv[0] only)
// is not protected. A script's executable is its interpreter: scripts cannot
// be protected by name.
// A process that is gone cannot be checked: detection reports it (not
// protected), handling refuses to restart it by name alone (SafetyGuard).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probe/sample.h"

namespace fp {

struct ExeIdentity {
  std::string path;      // readlink of /proc/PID/exe, without " (deleted)"
  bool trusted = false;  // see above
};

// The executable of the live process `key` from PROC_ROOT/PID/exe; nullopt
// when it is gone, the pid is another process's now, or exe is unreadable
// (a kernel thread).
std::optional<ExeIdentity> read_exe_identity(const ProcKey& key, const std::string& proc_root = "/proc");

class Protection {
 public:
  using ExeLookup = std::function<std::optional<ExeIdentity>(const ProcKey&)>;
  // lookup: how a live process's executable is found (tests inject one);
  // default: read_exe_identity(key, "/proc").
  explicit Protection(std::vector<std::string> entries = {}, ExeLookup lookup = {});

  void set_entries(std::vector<std::string> entries);
  const std::vector<std::string>& entries() const { return entries_; }

  // Why the live process `key`, named `comm`, is protected, e.g.
  // `protected: comm "nginx" (protected_comms)`; nullopt when it is not.
  std::optional<std::string> protects(const ProcKey& key, std::string_view comm) const;
  // The same for an executable already known.
  std::optional<std::string> protects(std::string_view comm, const ExeIdentity& exe) const;
  // The entry that names `comm`, whatever runs under that name (the check
  // for a process that is gone, and how a pretender is told).
  std::optional<std::string> named(std::string_view comm) const;
  // Why a process named like a protected one is not protected ("" when no
  // entry names it or it is protected): for the fault's evidence. A process
  // that is gone (alive false) cannot be checked.
  std::string pretender(const ProcKey& key, std::string_view comm, bool alive = true) const;

 private:
  std::optional<ExeIdentity> exe_of(const ProcKey& key) const;

  std::vector<std::string> entries_;
  ExeLookup lookup_;
  // The detectors ask about the same processes every tick: a verdict is
  // reused for a second (an exec within it is seen one second late).
  struct Cached {
    std::optional<ExeIdentity> exe;
    std::chrono::steady_clock::time_point at;
  };
  mutable std::map<ProcKey, Cached> cache_;
};

}  // namespace fp
