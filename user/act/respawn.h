// Respawning "any other" process: what it needs (argv, cwd, environment,
// user) is captured from /proc while the process is alive, because a crashed
// process cannot be asked afterwards.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <list>
#include <map>
#include <optional>
#include <string>

#include "act/spawn.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

// Reads PROC_ROOT/PID: argv (cmdline), cwd, environment (environ, as it was
// at exec: later setenv() calls are not visible), real uid/gid (status; user
// is set to the uid's name when its passwd entry has that primary gid, so the
// respawn gets the same supplementary groups), and log_path when stdout is a
// regular file. argv[0] becomes the path to exec: kept when it names the
// running binary (directly, relative to cwd, or through the process's PATH,
// which keeps multi-call names like busybox applets), else readlink(exe).
// Refused: kernel threads and zombies (empty cmdline), a deleted binary or
// cwd, a chrooted process or one in another mount namespace, unreadable fields.
Result<SpawnSpec> capture_spawn_spec(pid_t pid, const std::string& proc_root = "/proc");

// The captured specs of processes a policy could act on, by ProcKey.
class RespawnRegistry {
 public:
  static constexpr size_t kDefaultCapacity = 1024;

  explicit RespawnRegistry(std::string proc_root = "/proc", size_t capacity = kDefaultCapacity)
      : proc_root_(std::move(proc_root)), capacity_(capacity ? capacity : 1) {}

  // Captures once per process (later calls for a known key do nothing). A
  // capture that fails is remembered as the reason, so it is not retried on
  // every sample. The oldest entry is dropped beyond the capacity.
  void remember(const ProcKey& key);
  // Drops a process known to be dead (and not to be respawned).
  void forget(const ProcKey& key);

  // The spec, or nullptr when not captured or the capture failed.
  const SpawnSpec* find(const ProcKey& key) const;
  // Why the capture failed, or nullopt (also when never remembered).
  std::optional<std::string> failure(const ProcKey& key) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::optional<SpawnSpec> spec;
    std::string error;
    std::list<ProcKey>::iterator order;
  };
  std::string proc_root_;
  size_t capacity_;
  std::map<ProcKey, Entry> entries_;
  std::list<ProcKey> order_;  // oldest first
};

}  // namespace fp
