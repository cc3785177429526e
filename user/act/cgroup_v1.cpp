// cgroup v1: a group in each hierarchy a limit needs: cpu (cfs quota),
// memory (limit_in_bytes), blkio (throttle.*_bps_device), pids (pids.max).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "act/cgroup_throttle.h"
#include "act/cgroupfs.h"

namespace fp {
namespace {

constexpr const char* kManaged[] = {"cpu", "memory", "blkio", "pids"};

std::vector<std::string> controllers_for(const ThrottleLimits& l) {
  std::vector<std::string> c;
  if (l.cpu_share) c.push_back("cpu");
  if (l.memory_bytes) c.push_back("memory");
  if (l.io_bps) c.push_back("blkio");
  if (l.pids) c.push_back("pids");
  return c;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<void> write_one(const std::string& dir, const std::string& file, const std::string& value,
                       std::vector<std::string>* done) {
  if (auto r = write_control(dir + "/" + file, value); !r.ok()) return r;
  done->push_back(file + "=" + value);
  return {};
}

}  // namespace

CgroupV1Throttle::CgroupV1Throttle(std::map<std::string, std::string> v1, std::string proc_root,
                                   std::string state_path)
    : CgroupThrottle(std::move(proc_root), std::move(state_path)), v1_(std::move(v1)) {
  load_state();
}

bool CgroupV1Throttle::supports(const ThrottleLimits& l, std::string* why) const {
  for (const auto& c : controllers_for(l)) {
    if (v1_.count(c)) continue;
    if (why) *why = "cgroup v1 has no " + c + " hierarchy mounted";
    return false;
  }
  return true;
}

std::vector<std::string> CgroupV1Throttle::hierarchies_for(const ThrottleLimits& l) const {
  return controllers_for(l);
}

std::vector<std::string> CgroupV1Throttle::all_hierarchies() const {
  std::vector<std::string> out;
  for (const char* c : kManaged)
    if (v1_.count(c)) out.push_back(c);
  return out;
}

std::string CgroupV1Throttle::mount_of(const std::string& hierarchy) const {
  auto it = v1_.find(hierarchy);
  return it == v1_.end() ? std::string() : it->second;
}

std::optional<std::string> CgroupV1Throttle::original_in(const ProcCgroups& pc, const std::string& hierarchy) const {
  auto it = pc.v1.find(hierarchy);
  if (it == pc.v1.end()) return std::nullopt;
  return it->second;
}

void CgroupV1Throttle::before_move(const std::string& hierarchy, const std::string& group_dir) {
  if (hierarchy != "memory") return;
  // Without charge moving, the pages the process already has stay charged to
  // its old group and the limit only counts what it allocates from now on.
  // The file is in every memory group when the kernel has it (ask the root:
  // a fake tree only has what the test created). Kernels since 6.13 keep
  // the file but refuse any value but 0.
  if (!exists(mount_of("memory") + "/memory.move_charge_at_immigrate")) return;
  auto r = write_control(group_dir + "/memory.move_charge_at_immigrate", "3");
  if (!r.ok())
    spdlog::info("throttle (cgroup1): no charge moving ({}): the memory limit counts only new allocations",
                 r.error().message);
}

Result<void> CgroupV1Throttle::write_limits(const std::string& group, const ThrottleLimits& now,
                                            const std::vector<std::string>& devices_now,
                                            const ThrottleLimits& before,
                                            const std::vector<std::string>& devices_before,
                                            std::vector<std::string>* done) {
  if (now.cpu_share) {
    std::string dir = mount_of("cpu") + group;
    // Period first: the quota is checked against it.
    if (auto r = write_one(dir, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs), done); !r.ok()) return r;
    if (auto r = write_one(dir, "cpu.cfs_quota_us", std::to_string(cpu_quota_us(*now.cpu_share)), done); !r.ok())
      return r;
  } else if (before.cpu_share) {
    if (auto r = write_one(mount_of("cpu") + group, "cpu.cfs_quota_us", "-1", done); !r.ok()) return r;
  }

  if (now.memory_bytes) {
    std::string dir = mount_of("memory") + group;
    std::string bytes = std::to_string(*now.memory_bytes);
    // The soft limit is what reclaim under global pressure aims for; the hard
    // one is the ceiling the group reclaims itself down to.
    if (auto r = write_one(dir, "memory.soft_limit_in_bytes", bytes, done); !r.ok()) return r;
    if (auto r = write_one(dir, "memory.limit_in_bytes", bytes, done); !r.ok()) {
      if (r.error().code != EBUSY) return r;
      auto usage = read_text(dir + "/memory.usage_in_bytes");
      std::string used = usage.ok() ? std::string(usage->substr(0, usage->find('\n'))) : "unknown";
      return Error{EBUSY, "memory.limit_in_bytes=" + bytes + " is below what the group already uses (" + used +
                              " bytes) and the kernel could not reclaim enough: " + r.error().message};
    }
  } else if (before.memory_bytes) {
    std::string dir = mount_of("memory") + group;
    if (auto r = write_one(dir, "memory.limit_in_bytes", "-1", done); !r.ok()) return r;
    if (auto r = write_one(dir, "memory.soft_limit_in_bytes", "-1", done); !r.ok()) return r;
  }

  if (now.io_bps || before.io_bps) {
    std::string dir = mount_of("blkio") + group;
    if (now.io_bps) {
      // v1 throttles reads and direct writes; buffered writeback is
      // attributed to the flusher, not the process (v2's io.max does not
      // have that gap).
      std::string bps = std::to_string(*now.io_bps);
      for (const auto& dev : devices_now) {
        if (auto r = write_one(dir, "blkio.throttle.read_bps_device", dev + " " + bps, done); !r.ok()) return r;
        if (auto r = write_one(dir, "blkio.throttle.write_bps_device", dev + " " + bps, done); !r.ok()) return r;
      }
    }
    if (before.io_bps) {
      for (const auto& dev : devices_before) {
        if (now.io_bps && std::find(devices_now.begin(), devices_now.end(), dev) != devices_now.end()) continue;
        // 0 removes the device's rule.
        if (auto r = write_one(dir, "blkio.throttle.read_bps_device", dev + " 0", done); !r.ok()) return r;
        if (auto r = write_one(dir, "blkio.throttle.write_bps_device", dev + " 0", done); !r.ok()) return r;
      }
    }
  }

  if (now.pids) {
    if (auto r = write_one(mount_of("pids") + group, "pids.max", std::to_string(*now.pids), done); !r.ok()) return r;
  } else if (before.pids) {
    if (auto r = write_one(mount_of("pids") + group, "pids.max", "max", done); !r.ok()) return r;
  }
  return {};
}

}  // namespace fp
