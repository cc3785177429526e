// A cgroup of a test's own for a workload that must be held (a fork bomb
// under a pids limit, a leak under a memory limit) and always cleaned up.
// On cgroup v1 it is one group per controller asked for, at
// <mount>/<name>; on cgroup v2 one group with those controllers enabled in
// the root's cgroup.subtree_control. The destructor kills every process left
// in it (frozen first, so a fork bomb cannot outrun the kill) and removes
// the groups, whatever happened in the test.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace fp::e2e {

class CgroupSandbox {
 public:
  // `controllers`: "pids", "memory", "cpu", ... ; "freezer" is added on v1
  // where it is mounted (the cleanup uses it).
  CgroupSandbox(const std::string& name, std::vector<std::string> controllers);
  ~CgroupSandbox();
  CgroupSandbox(const CgroupSandbox&) = delete;
  CgroupSandbox& operator=(const CgroupSandbox&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool v2() const { return v2_; }
  // The group's path inside the hierarchy ("/fpe2e-bomb-123"), as
  // /proc/PID/cgroup shows it (and faultprobe's events name it).
  const std::string& path() const { return path_; }
  // The directory of the group for `controller`.
  std::string dir(const std::string& controller) const;
  // Writes a control file of `controller`'s group ("pids", "pids.max", "64").
  bool set(const std::string& controller, const std::string& file, const std::string& value) const;
  std::string get(const std::string& controller, const std::string& file) const;
  // Limits by name, in the file and syntax of this host's version.
  bool limit_pids(uint64_t n) const;
  bool limit_memory(uint64_t bytes) const;
  bool limit_cpu(double share, long period_us = 100000) const;  // of one CPU, per period
  // How many times the OOM killer killed in the group (memory controller).
  uint64_t oom_kills() const;
  // argv that enters every group of the sandbox, then execs `argv`.
  std::vector<std::string> wrap(const std::vector<std::string>& argv) const;
  // The live (not zombie) processes in the group now.
  std::vector<pid_t> pids() const;
  // Freezes, SIGKILLs everything and thaws, until the group is empty.
  void kill_all() const;

 private:
  std::vector<std::string> dirs() const;  // every group directory, once
  bool freeze(bool on) const;

  std::string error_;
  bool v2_ = false;
  std::string path_;
  std::map<std::string, std::string> dirs_;  // controller -> group directory
  std::set<std::string> on_v2_;              // the controllers that are v2's
};

}  // namespace fp::e2e
