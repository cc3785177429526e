#include "act/cgroup_ops.h"

#include <cerrno>

#include "act/cgroupfs.h"

namespace fp {

Result<std::string> CgroupOps::read(const std::string& path) { return read_text(path); }
Result<void> CgroupOps::write(const std::string& path, const std::string& value) {
  return write_control(path, value);
}
Result<void> CgroupOps::make_group(const std::string& dir) { return fp::make_group(dir); }
Result<void> CgroupOps::remove_group(const std::string& dir) { return fp::remove_group(dir); }
Result<std::vector<pid_t>> CgroupOps::pids(const std::string& dir) { return read_group_pids(dir); }
Result<void> CgroupOps::move(pid_t tgid, const std::string& dir) { return move_process(tgid, dir); }
std::vector<std::string> CgroupOps::subdirs(const std::string& dir) { return list_subdirs(dir); }

Result<struct stat> CgroupOps::status(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Error::from_errno(errno, "lstat " + path);
  return st;
}

CgroupOps& real_cgroup_ops() {
  static CgroupOps ops;
  return ops;
}

}  // namespace fp
