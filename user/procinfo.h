// Names of a process that the probe does not carry: exe, cmdline, cgroup path,
// uid. Read from /proc once per process (pid + start time) and cached.
//
// Every byte of it is chosen by the process's user (a 1 MiB command line, a
// 4 KiB path), so the cache is bounded in bytes, not entries: a command line
// is kept up to max_cmdline_bytes, and past max_bytes the oldest entries are
// evicted (and read again if asked for). Both are counted (stats()).
#pragma once

#include <cstdint>
#include <cstddef>
#include <list>
#include <map>
#include <string>
#include <utility>

#include "probe/sample.h"

namespace fp {

struct ProcInfo {
  bool found = false;     // /proc/PID existed when first asked
  std::string comm;       // /proc/PID/comm
  std::string exe;        // readlink /proc/PID/exe ("" for kernel threads or when unreadable)
  std::string cmdline;    // NUL-separated args joined with spaces, "" for kernel threads;
                          // at most the reader's max_cmdline_bytes (cmdline_truncated then)
  bool cmdline_truncated = false;
  std::string cgroup;     // the cgroup v2 path if the process has one other than "/", else the
                          // v1 path of the cpu controller, else name=systemd's, else "/"
  uint32_t uid = 0;       // real uid from /proc/PID/status
  uint32_t ppid = 0;
};

// Parsers, exposed for tests.
std::string parse_cgroup_file(const std::string& content);
std::string join_cmdline(const std::string& raw);

struct ProcInfoCacheOptions {
  size_t max_cmdline_bytes = 4096;        // 0: the command line is not read at all
  size_t max_bytes = size_t(16) << 20;    // all entries together (strings + overhead)
};

class ProcInfoCache {
 public:
  explicit ProcInfoCache(std::string proc_root = "/proc", ProcInfoCacheOptions opts = {})
      : root_(std::move(proc_root)), opts_(opts) {}

  // Reads /proc the first time a key is asked for; later calls return the
  // cached entry. The reference stays valid until the next get() or prune()
  // (a get() may evict older entries to stay under max_bytes).
  const ProcInfo& get(const ProcKey& key);
  // Drops entries not asked for since the previous prune (call once per sample cycle).
  void prune();
  size_t size() const { return cache_.size(); }
  // Reads /proc now, bypassing (and not filling) the cache: for decisions
  // that must see the process as it is now (after an exec or a prctl rename).
  ProcInfo read(uint32_t pid) const;

  struct Stats {
    size_t entries = 0;
    size_t bytes = 0;               // what the entries hold now
    size_t max_bytes = 0;
    uint64_t evicted = 0;           // entries dropped to stay under max_bytes
    uint64_t cmdline_truncated = 0; // command lines cut to max_cmdline_bytes
  };
  Stats stats() const;

  // What one entry costs against max_bytes (exposed for tests).
  static size_t entry_bytes(const ProcInfo& info);

 private:
  struct Entry {
    ProcInfo info;
    bool used = true;
    size_t bytes = 0;
    std::list<ProcKey>::iterator order;  // position in order_ (oldest first)
  };
  void erase(std::map<ProcKey, Entry>::iterator it);

  std::string root_;
  ProcInfoCacheOptions opts_;
  std::map<ProcKey, Entry> cache_;
  std::list<ProcKey> order_;
  size_t bytes_ = 0;
  uint64_t evicted_ = 0;
  mutable uint64_t cmdline_truncated_ = 0;
};

}  // namespace fp
