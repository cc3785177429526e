// File operations on a cgroup tree, real or fake. The same code runs against
// the kernel's cgroupfs and against a plain directory tree in a unit test;
// where the two differ (the kernel creates control files in a new group and
// lets rmdir remove a group that still lists them), the helpers check which
// one they are on and do what the kernel would have done.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/result.h"

namespace fp {

// Whether path is on cgroupfs (v1 or v2) rather than an ordinary filesystem.
bool on_cgroupfs(const std::string& path);

// The whole file. Errors carry errno and the path.
Result<std::string> read_text(const std::string& path);

// One write(2) of value (the kernel parses each write as a whole). On a fake
// tree a missing control file is created; on cgroupfs a missing file is an
// error (e.g. the controller is not enabled for that group).
Result<void> write_control(const std::string& path, const std::string& value);

// mkdir, EEXIST is success.
Result<void> make_group(const std::string& dir);

// Removes a group directory. On cgroupfs that is one rmdir; on a fake tree the
// control files are removed first. A group that no longer exists is success.
// Fails (EBUSY on cgroupfs) while processes or child groups remain.
Result<void> remove_group(const std::string& dir);

// The pids listed in <dir>/cgroup.procs (one per line).
Result<std::vector<pid_t>> read_group_pids(const std::string& dir);

// Moves a whole process (all its threads) into <dir> by writing its tgid to
// <dir>/cgroup.procs.
Result<void> move_process(pid_t tgid, const std::string& dir);

// The child directory names of dir ("" on error).
std::vector<std::string> list_subdirs(const std::string& dir);

}  // namespace fp
