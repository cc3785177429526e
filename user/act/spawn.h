// Starting a process as the config (or a captured process) says: argv, cwd,
// environment, user, supplementary groups, oom_score_adj; in a new session,
// stdio to /dev/null or a log file, with a pidfd so later signals can never
// hit a reused pid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "probe/sample.h"
#include "util/result.h"

namespace fp {

struct SpawnSpec {
  std::vector<std::string> argv;                           // argv[0] is the path executed
  std::string cwd = "/";
  std::vector<std::pair<std::string, std::string>> env;    // the whole environment (not added to ours)
  // Who it runs as: by name (resolved with getpwnam, its primary group and
  // supplementary groups) or, when user is empty, by uid/gid (root = 0/0).
  std::string user;
  uid_t uid = 0;
  gid_t gid = 0;
  // Supplementary groups exactly (a respawn: what /proc/PID/status said the
  // process had); nullopt = the user's from the group database, or just gid.
  std::optional<std::vector<gid_t>> groups;
  // Written to /proc/self/oom_score_adj before exec: a process started by the
  // daemon must not inherit the daemon's own -900 (OOMScoreAdjust=).
  int oom_score_adj = 0;
  std::string log_path;  // stdout+stderr appended here; "" = /dev/null
  // Where log_path came from. false: the config (a path in the root-owned
  // log_dir), opened by the daemon before the fork, never through a symlink.
  // true: a path a user chose (a respawned process's old stdout), opened in
  // the child after it became that user, never through a symlink, so it can
  // reach nothing the user could not open; when it cannot be opened the
  // output goes to /dev/null and Spawned::warning says why.
  bool log_as_user = false;
};

struct Spawned {
  pid_t pid = -1;
  int pidfd = -1;        // owned by the caller (close it)
  ProcKey key;           // pid + start time as the probe spells it (start_ns = task start, CLOCK_MONOTONIC)
  std::string warning;   // a non-fatal problem (the log could not be opened as the user), "" = none
  std::string unit;      // the transient systemd unit it runs in (act/systemd_spawner.h), "" = none
};

// Forks and execs. Fails (without leaving a child) when the user, cwd or
// executable is wrong: the child reports exec errors through a CLOEXEC pipe.
Result<Spawned> spawn_process(const SpawnSpec& spec);

// The start time of a live process as the probe records it (task->start_time,
// CLOCK_MONOTONIC ns), from /proc/PID/stat's starttime (clock ticks since
// boot) corrected for time spent suspended. Precision: one clock tick.
Result<uint64_t> process_start_ns(pid_t pid, const std::string& proc_root = "/proc");
// Whether a ProcKey's start time and a /proc reading are the same process
// (within one clock tick, plus slack).
bool same_start(uint64_t probe_start_ns, uint64_t proc_start_ns);

}  // namespace fp
