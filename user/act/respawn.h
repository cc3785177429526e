// Respawning "any other" process: what it needs (argv, cwd, environment,
// user) is captured from /proc while the process is alive, because a crashed
// process cannot be asked afterwards.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>

#include "act/spawn.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

// A respawn keeps the whole command line and environment or nothing: a
// truncated environment would start something else. Above this many bytes
// (cmdline + environ, as the kernel holds them) a process is not captured and
// will not be respawned; the reason is recorded and counted.
inline constexpr size_t kMaxSpawnSpecBytes = size_t(1) << 20;

// Reads PROC_ROOT/PID: argv (cmdline), cwd, environment (environ, as it was
// at exec: later setenv() calls are not visible), real uid/gid and the
// supplementary groups it has now (status "Groups:", not the group database:
// a process may have dropped or been given groups), its oom_score_adj, and
// log_path when stdout is a regular file (opened again as the user, never
// through a symlink: log_as_user). argv[0] becomes the path to exec: kept when
// it names the running binary (directly, relative to cwd, or through the
// process's PATH, which keeps multi-call names like busybox applets), else
// readlink(exe). Refused: kernel threads and zombies (empty cmdline), a
// deleted binary or cwd, a chrooted process or one in another mount
// namespace, unreadable fields, and a command line plus environment above
// max_bytes (code E2BIG).
Result<SpawnSpec> capture_spawn_spec(pid_t pid, const std::string& proc_root = "/proc",
                                     size_t max_bytes = kMaxSpawnSpecBytes);

// The bytes a captured spec holds (strings plus per-string overhead).
size_t spawn_spec_bytes(const SpawnSpec& spec);

// The captured specs of processes a policy could act on, by ProcKey.
// Bounded in entries and in bytes (README, "Security"): 1,024 processes with
// 1 MiB of command line and environment each would otherwise hold 1 GiB.
class RespawnRegistry {
 public:
  static constexpr size_t kDefaultCapacity = 1024;
  static constexpr size_t kDefaultMaxBytes = size_t(32) << 20;

  struct Stats {
    size_t entries = 0;
    size_t bytes = 0;  // spawn_spec_bytes of the specs held
    size_t max_bytes = 0;
    uint64_t evicted = 0;    // oldest entries dropped for the entry or byte bound
    uint64_t oversize = 0;   // processes not captured: above kMaxSpawnSpecBytes
  };

  explicit RespawnRegistry(std::string proc_root = "/proc", size_t capacity = kDefaultCapacity,
                           size_t max_bytes = kDefaultMaxBytes)
      : proc_root_(std::move(proc_root)), capacity_(capacity ? capacity : 1), max_bytes_(max_bytes) {}

  // Captures once per process (later calls for a captured key do nothing). A
  // capture that fails is remembered as the reason (failure()); a later call
  // tries again (the daemon offers a process once per name: an exec), except
  // after a refusal for size. The oldest entries are dropped beyond the capacity or the
  // byte bound.
  void remember(const ProcKey& key);
  // Drops a process known to be dead (and not to be respawned).
  void forget(const ProcKey& key);

  // The spec, or nullptr when not captured or the capture failed.
  const SpawnSpec* find(const ProcKey& key) const;
  // Why the capture failed, or nullopt (also when never remembered).
  std::optional<std::string> failure(const ProcKey& key) const;
  size_t size() const { return entries_.size(); }
  Stats stats() const { return {entries_.size(), bytes_, max_bytes_, evicted_, oversize_}; }

 private:
  struct Entry {
    std::optional<SpawnSpec> spec;
    std::string error;
    bool oversize = false;  // refused for its size: not captured again
    size_t bytes = 0;
    std::list<ProcKey>::iterator order;
  };
  void erase(std::map<ProcKey, Entry>::iterator it);
  std::string proc_root_;
  size_t capacity_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  uint64_t evicted_ = 0, oversize_ = 0;
  std::map<ProcKey, Entry> entries_;
  std::list<ProcKey> order_;  // oldest first
};

}  // namespace fp
