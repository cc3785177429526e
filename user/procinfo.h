// Names of a process that the probe does not carry: exe, cmdline, cgroup path,
// uid. Read from /proc once per process (pid + start time) and cached.
#pragma once

#include <cstdint>
#include <cstddef>
#include <map>
#include <string>
#include <utility>

#include "probe/sample.h"

namespace fp {

struct ProcInfo {
  bool found = false;     // /proc/PID existed when first asked
  std::string comm;       // /proc/PID/comm
  std::string exe;        // readlink /proc/PID/exe ("" for kernel threads or when unreadable)
  std::string cmdline;    // NUL-separated args joined with spaces, "" for kernel threads
  std::string cgroup;     // the cgroup v2 path if the process has one other than "/", else the
                          // v1 path of the cpu controller, else name=systemd's, else "/"
  uint32_t uid = 0;       // real uid from /proc/PID/status
  uint32_t ppid = 0;
};

// Parsers, exposed for tests.
std::string parse_cgroup_file(const std::string& content);
std::string join_cmdline(const std::string& raw);

class ProcInfoCache {
 public:
  explicit ProcInfoCache(std::string proc_root = "/proc") : root_(std::move(proc_root)) {}

  // Reads /proc the first time a key is asked for; later calls return the cached entry.
  const ProcInfo& get(const ProcKey& key);
  // Drops entries not asked for since the previous prune (call once per sample cycle).
  // References returned by get() for dropped entries become invalid.
  void prune();
  size_t size() const { return cache_.size(); }
  // Reads /proc now, bypassing (and not filling) the cache: for decisions
  // that must see the process as it is now (after an exec or a prctl rename).
  ProcInfo read(uint32_t pid) const;

 private:
  struct Entry {
    ProcInfo info;
    bool used = true;
  };
  std::string root_;
  std::map<ProcKey, Entry> cache_;
};

}  // namespace fp
