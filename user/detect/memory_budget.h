// The memory a process may still take before it hits a limit: memory_leak's
// forecast divides it by the process's growth rate. The tightest of its
// memory cgroup's limit and every limited ancestor's (v1
// memory.limit_in_bytes - memory.usage_in_bytes, v2 memory.max -
// memory.current) and the host's MemAvailable.
//
// Files are read through CgroupOps (a tree of plain files in tests), and not
// per process per tick: a process's cgroup path and each cgroup's and the
// host's values are kept for `refresh_ns` and read again only after that.
// Only the processes the forecast asks about (a steady climb of 64 MiB) are
// looked up at all.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "act/cgroup.h"
#include "act/cgroup_ops.h"
#include "detect/cgroup_paths.h"
#include "probe/sample.h"

namespace fp {

struct MemoryBudget {
  uint64_t available_bytes = 0;  // left under the tightest limit
  uint64_t limit_bytes = 0;      // that limit
  uint64_t usage_bytes = 0;      // charged against it now
  std::string limit;             // which: "memory cgroup /app (memory.max)", "host MemAvailable"
};

class MemoryBudgetSource {
 public:
  virtual ~MemoryBudgetSource() = default;
  // Nullopt when nothing could be read (the process is gone, no /proc/meminfo).
  virtual std::optional<MemoryBudget> budget(const ProcKey& k, uint64_t now_ns) = 0;
};

class CgroupMemoryBudget : public MemoryBudgetSource {
 public:
  static constexpr uint64_t kDefaultRefreshNs = 2'000'000'000ull;
  // layout: where the memory controller is (v1 "memory" mount, else the v2
  // root when it offers "memory"; neither: the host's MemAvailable only).
  CgroupMemoryBudget(CgroupLayout layout, CgroupOps& ops, std::string proc_root = "/proc",
                     uint64_t refresh_ns = kDefaultRefreshNs);
  std::optional<MemoryBudget> budget(const ProcKey& k, uint64_t now_ns) override;

  // How many files were read so far (tests hold the caching to it).
  uint64_t reads() const { return paths_.reads(); }

 private:
  struct Reading {
    uint64_t read_ns = 0;
    bool limited = false;  // a limit is set there
    uint64_t limit = 0, usage = 0;
  };
  const Reading& group(const std::string& path, uint64_t now_ns);
  const Reading& host(uint64_t now_ns);
  void sweep(uint64_t now_ns);

  ControllerPaths paths_;  // each process's memory cgroup
  std::string proc_root_;
  uint64_t refresh_ns_;
  std::map<std::string, Reading> groups_;
  Reading host_;
  bool host_read_ = false;
  uint64_t next_sweep_ns_ = 0;
};

// "MemTotal:  123 kB" -> bytes of a /proc/meminfo field, nullopt if missing.
std::optional<uint64_t> meminfo_bytes(const std::string& text, const std::string& field);

}  // namespace fp
