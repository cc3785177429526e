// cgroup v1: a place in each hierarchy a limit needs: cpu (cfs quota),
// memory (limit_in_bytes), blkio (throttle.*_bps_device), pids (pids.max).
#include <algorithm>
#include <cerrno>
#include <cmath>

#include <spdlog/spdlog.h>

#include "act/cgroup_throttle.h"
#include "act/cgroup_values.h"

namespace fp {
namespace {

using namespace cgv;

constexpr const char* kManaged[] = {"cpu", "memory", "blkio", "pids"};

// What a file holds, or what it means when it holds nothing (a fake tree's
// fresh group): the kernel's default, no limit.
std::string or_default(const std::string& text, const char* dflt) {
  auto t = trim(text);
  return t.empty() ? std::string(dflt) : std::string(t);
}

}  // namespace

CgroupV1Throttle::CgroupV1Throttle(std::map<std::string, std::string> v1, CgroupThrottleEnv env)
    : CgroupThrottle(std::move(env)), v1_(std::move(v1)) {
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

std::vector<std::string> CgroupV1Throttle::controllers_for(const ThrottleLimits& l) const {
  std::vector<std::string> c;
  if (l.cpu_share) c.push_back("cpu");
  if (l.memory_bytes) c.push_back("memory");
  if (l.io_bps) c.push_back("blkio");
  if (l.pids) c.push_back("pids");
  return c;
}

std::string CgroupV1Throttle::hierarchy_of(const std::string& controller) const {
  // Co-mounted controllers ("cpu,memory" on one mount) share one place,
  // named after the first of kManaged on that mount.
  const std::string mount = mount_of(controller);
  for (const char* c : kManaged)
    if (mount_of(c) == mount) return c;
  return controller;
}

std::vector<std::string> CgroupV1Throttle::all_hierarchies() const {
  std::vector<std::string> out;
  for (const char* c : kManaged)
    if (v1_.count(c) && hierarchy_of(c) == c) out.push_back(c);
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
  if (hierarchy != hierarchy_of("memory") || !v1_.count("memory")) return;
  // Without charge moving, the pages the process already has stay charged to
  // its old group (the parent: still under its limit) and the new limit only
  // counts what it allocates from now on. The file is in every memory group
  // when the kernel has it (ask the root: a fake tree only has what the test
  // made). Kernels since 6.13 keep the file but refuse any value but 0.
  if (!ops().status(mount_of("memory") + "/memory.move_charge_at_immigrate").ok()) return;
  auto r = ops().write(group_dir + "/memory.move_charge_at_immigrate", "3");
  if (!r.ok())
    spdlog::info("throttle (cgroup1): no charge moving ({}): the memory limit counts only new allocations",
                 r.error().message);
}

std::vector<ControlWrite> CgroupV1Throttle::writes_for(const std::string& controller, const ThrottleLimits& l,
                                                       const std::vector<std::string>& devices,
                                                       const std::string& path, const BeforeFn& before) {
  std::vector<ControlWrite> out;
  if (controller == "cpu" && l.cpu_share) {
    const uint64_t quota = cpu_quota_us(*l.cpu_share);
    const std::string q0 = or_default(before("cpu.cfs_quota_us", ""), "-1");
    const std::string p0 = or_default(before("cpu.cfs_period_us", ""), "100000");
    // The tightest quota of the group and its ancestors: v1 refuses a quota
    // above a parent's (EINVAL), and one at or above it changes nothing.
    double in_force = cpu_ratio(q0, p0);
    for (std::string a = path; a != "/";) {
      a = parent_path(a);
      std::string dir = dir_of("cpu", a);
      auto q = ops().read(dir + "/cpu.cfs_quota_us"), p = ops().read(dir + "/cpu.cfs_period_us");
      if (q.ok() && p.ok()) in_force = std::min(in_force, cpu_ratio(*q, *p));
    }
    if (double(quota) / double(kCpuPeriodUs) >= in_force) return out;
    // Period first: the quota is checked against it.
    out.push_back({"cpu", "cpu.cfs_period_us", "", std::to_string(kCpuPeriodUs), p0});
    out.push_back({"cpu", "cpu.cfs_quota_us", "", std::to_string(quota), q0});
  } else if (controller == "memory" && l.memory_bytes) {
    // The soft limit is what reclaim under global pressure aims for; the hard
    // one is the ceiling the group reclaims itself down to.
    // A lower hard limit above the group binds it already.
    const uint64_t above = ancestors_limit(hierarchy_of("memory"), path, "memory.limit_in_bytes");
    for (const char* file : {"memory.soft_limit_in_bytes", "memory.limit_in_bytes"}) {
      std::string was = or_default(before(file, ""), "-1");
      if (*l.memory_bytes < std::min(limit_value(was), above))
        out.push_back({"memory", file, "", std::to_string(*l.memory_bytes), was});
    }
  } else if (controller == "blkio" && l.io_bps) {
    // v1 throttles reads and direct writes; buffered writeback is attributed
    // to the flusher, not the process (v2's io.max does not have that gap).
    for (const auto& dev : devices) {
      for (const char* file : {"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"}) {
        std::string_view line = device_line(before(file, dev), dev);
        uint64_t was = line.empty() ? 0 : limit_value(line.substr(dev.size() + 1));
        if (was == 0) was = kUnlimited;  // 0 (or no line): no rule for the device
        if (*l.io_bps >= was) continue;
        // Writing "DEV 0" removes the device's rule.
        out.push_back({"blkio", file, dev, dev + " " + std::to_string(*l.io_bps),
                       dev + " " + (was == kUnlimited ? "0" : std::to_string(was))});
      }
    }
  } else if (controller == "pids" && l.pids) {
    std::string was = or_default(before("pids.max", ""), "max");
    if (*l.pids < std::min(limit_value(was), ancestors_limit(hierarchy_of("pids"), path, "pids.max")))
      out.push_back({"pids", "pids.max", "", std::to_string(*l.pids), was});
  }
  return out;
}

Error CgroupV1Throttle::explain(const std::string& dir, const ControlWrite& w, Error err) {
  if (w.file != "memory.limit_in_bytes" || err.code != EBUSY) return err;
  auto usage = ops().read(dir + "/memory.usage_in_bytes");
  std::string used = usage.ok() ? std::string(trim(*usage)) : "unknown";
  return Error{EBUSY, "memory.limit_in_bytes=" + w.value + " is below what the group already uses (" + used +
                          " bytes) and the kernel could not reclaim enough: " + err.message};
}

}  // namespace fp
