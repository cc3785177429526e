// cgroup v2: cpu.max, memory.high, io.max, pids.max.
#include <algorithm>
#include <cerrno>
#include <cmath>

#include "act/cgroup_throttle.h"
#include "act/cgroup_values.h"

namespace fp {
namespace {

using namespace cgv;

std::string or_default(const std::string& text, const std::string& dflt) {
  auto t = trim(text);
  return t.empty() ? dflt : std::string(t);
}

// "20000 100000" as a share of one CPU; "max 100000" is unlimited.
double cpu_max_ratio(std::string_view text) {
  text = trim(text);
  size_t sp = text.find(' ');
  if (sp == std::string_view::npos) return cpu_ratio(text, "100000");
  return cpu_ratio(text.substr(0, sp), text.substr(sp + 1));
}

}  // namespace

CgroupV2Throttle::CgroupV2Throttle(std::string root, std::vector<std::string> controllers, CgroupThrottleEnv env)
    : CgroupThrottle(std::move(env)), root_(std::move(root)), controllers_(std::move(controllers)) {
  load_state();
}

bool CgroupV2Throttle::supports(const ThrottleLimits& l, std::string* why) const {
  for (const auto& c : controllers_for(l)) {
    if (std::find(controllers_.begin(), controllers_.end(), c) != controllers_.end()) continue;
    if (why) {
      std::string have;
      for (const auto& h : controllers_) have += (have.empty() ? "" : " ") + h;
      *why = "cgroup2 at " + root_ + " has no " + c + " controller (it has: " + (have.empty() ? "none" : have) + ")";
    }
    return false;
  }
  return true;
}

std::vector<std::string> CgroupV2Throttle::controllers_for(const ThrottleLimits& l) const {
  std::vector<std::string> c;
  if (l.cpu_share) c.push_back("cpu");
  if (l.memory_bytes) c.push_back("memory");
  if (l.io_bps) c.push_back("io");
  if (l.pids) c.push_back("pids");
  return c;
}

std::vector<ControlWrite> CgroupV2Throttle::writes_for(const std::string& controller, const ThrottleLimits& l,
                                                       const std::vector<std::string>& devices,
                                                       const std::string& path, const BeforeFn& before) {
  std::vector<ControlWrite> out;
  const std::string period = std::to_string(kCpuPeriodUs);
  if (controller == "cpu" && l.cpu_share) {
    const uint64_t quota = cpu_quota_us(*l.cpu_share);
    const std::string was = or_default(before("cpu.max", ""), "max " + period);
    // The tightest of the group's and its ancestors' (the root has none).
    double in_force = cpu_max_ratio(was);
    for (std::string a = parent_path(path); a != "/"; a = parent_path(a))
      if (auto m = ops().read(dir_of("v2", a) + "/cpu.max"); m.ok()) in_force = std::min(in_force, cpu_max_ratio(*m));
    if (double(quota) / double(kCpuPeriodUs) < in_force)
      out.push_back({"cpu", "cpu.max", "", std::to_string(quota) + " " + period, was});
  } else if (controller == "memory" && l.memory_bytes) {
    // memory.high throttles and reclaims above the limit; it never invokes
    // the OOM killer, which is what a throttle (not a kill) should do.
    std::string was = or_default(before("memory.high", ""), "max");
    const uint64_t above = std::min(ancestors_limit("v2", path, "memory.high"), ancestors_limit("v2", path, "memory.max"));
    if (*l.memory_bytes < std::min(limit_value(was), above))
      out.push_back({"memory", "memory.high", "", std::to_string(*l.memory_bytes), was});
  } else if (controller == "io" && l.io_bps) {
    for (const auto& dev : devices) {
      std::string_view line = device_line(before("io.max", dev), dev);
      uint64_t r = keyed_value(line, "rbps"), w = keyed_value(line, "wbps");
      uint64_t nr = std::min(*l.io_bps, r), nw = std::min(*l.io_bps, w);
      if (nr == r && nw == w) continue;
      out.push_back({"io", "io.max", dev, dev + " rbps=" + limit_text(nr) + " wbps=" + limit_text(nw),
                     dev + " rbps=" + limit_text(r) + " wbps=" + limit_text(w)});
    }
  } else if (controller == "pids" && l.pids) {
    std::string was = or_default(before("pids.max", ""), "max");
    if (*l.pids < std::min(limit_value(was), ancestors_limit("v2", path, "pids.max")))
      out.push_back({"pids", "pids.max", "", std::to_string(*l.pids), was});
  }
  return out;
}

}  // namespace fp
