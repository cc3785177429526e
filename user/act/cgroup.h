// What cgroups this host has: where the v2 hierarchy and each v1 controller
// are mounted, which v2 controllers exist, which cgroups a process is in, and
// which block devices an io limit applies to by default. Pure readers: the
// writes live in cgroupfs.h and the throttle backends.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fp {

struct CgroupLayout {
  std::string v2_root;                        // cgroup2 mount point, "" when none
  std::vector<std::string> v2_controllers;    // from <v2_root>/cgroup.controllers
  std::map<std::string, std::string> v1;      // controller ("cpu", "name=systemd") -> mount point
};

// Parses /proc/self/mountinfo text. Comma-joined v1 hierarchies ("cpu,cpuacct")
// give one map entry per controller, all with the same mount point. A mount of
// a whole hierarchy (root "/") wins over a bind mount of a sub-tree; otherwise
// the first mount of a hierarchy wins. The v2 controllers are read from
// fs_root + v2_root + "/cgroup.controllers" (fs_root lets tests use a fake tree).
CgroupLayout parse_cgroup_mounts(std::string_view mountinfo_text, const std::string& fs_root = "");
// The real host's layout, from /proc/self/mountinfo.
CgroupLayout detect_cgroups();

// One process's cgroups, from /proc/PID/cgroup: the v2 path ("0::/path") and
// the v1 path of each controller ("4:cpu,cpuacct:/path" gives cpu and cpuacct).
struct ProcCgroups {
  std::optional<std::string> v2;
  std::map<std::string, std::string> v1;
};
ProcCgroups parse_proc_cgroups(std::string_view text);

// Whole disks an io limit covers when none are configured: every
// <sys_root>/block/NAME except loop*, ram*, zram*, as "MAJ:MIN" from its dev
// file, sorted.
std::vector<std::string> default_io_devices(const std::string& sys_root = "/sys");

}  // namespace fp
