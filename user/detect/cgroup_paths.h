// Which cgroup of one controller a process is in, for detectors that read
// cgroup files (memory_leak's budget, runq_starvation's CPU quota): the
// controller's mount (its v1 hierarchy, else the v2 root when that offers it)
// and each process's path there from /proc/PID/cgroup, kept for `refresh_ns`
// so a process asked about every tick costs one read per refresh. Paths not
// asked about for 4 refreshes are dropped (processes exit).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "act/cgroup.h"
#include "act/cgroup_ops.h"
#include "probe/sample.h"

namespace fp {

class ControllerPaths {
 public:
  ControllerPaths(const CgroupLayout& layout, const std::string& controller, CgroupOps& ops,
                  std::string proc_root, uint64_t refresh_ns);

  // The controller's mount, "" when the host has it nowhere.
  const std::string& mount() const { return mount_; }
  bool v2() const { return v2_; }
  // The directory of a cgroup path ("/" is the mount itself).
  std::string dir(const std::string& path) const { return path == "/" ? mount_ : mount_ + path; }
  // The process's path in the controller's hierarchy; nullopt when it is gone
  // or the host has no such controller.
  std::optional<std::string> path_of(const ProcKey& k, uint64_t now_ns);
  // A file's text (counted in reads()); nullopt when it cannot be read.
  std::optional<std::string> read(const std::string& path);
  void sweep(uint64_t now_ns);
  uint64_t reads() const { return reads_; }
  uint64_t refresh_ns() const { return refresh_ns_; }

 private:
  struct Entry {
    uint64_t read_ns = 0;
    std::optional<std::string> path;
  };
  std::string controller_;
  std::string mount_;
  bool v2_ = false;
  CgroupOps& ops_;
  std::string proc_root_;
  uint64_t refresh_ns_;
  std::map<ProcKey, Entry> paths_;
  uint64_t next_sweep_ns_ = 0;
  uint64_t reads_ = 0;
};

}  // namespace fp
