// The cgroup file operations the throttle backends make, behind an interface:
// the real one is cgroupfs.h on the kernel's cgroupfs; unit tests give one
// that keeps the kernel's rules on a plain directory tree (a process is in
// one group per hierarchy, cgroup v2's no-internal-process rule, a busy group
// cannot be removed, ownership of a delegated subtree).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "util/result.h"

namespace fp {

class CgroupOps {
 public:
  virtual ~CgroupOps() = default;
  virtual Result<std::string> read(const std::string& path);
  virtual Result<void> write(const std::string& path, const std::string& value);
  virtual Result<void> make_group(const std::string& dir);  // EEXIST is success
  virtual Result<void> remove_group(const std::string& dir);  // gone already is success
  virtual Result<std::vector<pid_t>> pids(const std::string& dir);
  virtual Result<void> move(pid_t tgid, const std::string& dir);
  virtual std::vector<std::string> subdirs(const std::string& dir);
  // lstat(2): who owns a group or its files, and who may write them.
  virtual Result<struct stat> status(const std::string& path);
};

// The kernel's cgroupfs (cgroupfs.h).
CgroupOps& real_cgroup_ops();

}  // namespace fp
