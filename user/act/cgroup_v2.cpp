// cgroup v2: cpu.max, memory.high, io.max, pids.max in one group.
#include <algorithm>
#include <cerrno>
#include <sstream>

#include "act/cgroup_throttle.h"
#include "act/cgroupfs.h"

namespace fp {
namespace {

std::vector<std::string> controllers_for(const ThrottleLimits& l) {
  std::vector<std::string> c;
  if (l.cpu_share) c.push_back("cpu");
  if (l.memory_bytes) c.push_back("memory");
  if (l.io_bps) c.push_back("io");
  if (l.pids) c.push_back("pids");
  return c;
}

// Adds "+ctrl" for every controller not yet enabled in a
// cgroup.subtree_control file, in one write (the kernel takes a list).
Result<void> enable_controllers(const std::string& file, const std::vector<std::string>& want) {
  auto text = read_text(file);
  std::vector<std::string> have;
  if (text.ok()) {
    std::istringstream in(*text);
    for (std::string w; in >> w;) have.push_back(w[0] == '+' ? w.substr(1) : w);
  }
  std::string add;
  for (const auto& c : want)
    if (std::find(have.begin(), have.end(), c) == have.end()) add += (add.empty() ? "+" : " +") + c;
  if (add.empty()) return {};
  return write_control(file, add);
}

Result<void> write_one(const std::string& dir, const std::string& file, const std::string& value,
                       std::vector<std::string>* done) {
  if (auto r = write_control(dir + "/" + file, value); !r.ok()) return r;
  done->push_back(file + "=" + value);
  return {};
}

}  // namespace

CgroupV2Throttle::CgroupV2Throttle(std::string root, std::vector<std::string> controllers, std::string proc_root,
                                   std::string state_path)
    : CgroupThrottle(std::move(proc_root), std::move(state_path)),
      root_(std::move(root)),
      controllers_(std::move(controllers)) {
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

Result<void> CgroupV2Throttle::prepare_parents(const ThrottleLimits& l) {
  // v2 control files exist in a group only for controllers its parent
  // enabled in cgroup.subtree_control, so both levels above the group need
  // them. <root>/faultprobe holds no processes itself, which v2 requires of
  // a group that enables controllers for its children.
  auto want = controllers_for(l);
  if (auto r = enable_controllers(root_ + "/cgroup.subtree_control", want); !r.ok()) return r;
  if (auto r = make_group(root_ + "/faultprobe"); !r.ok()) return r;
  return enable_controllers(root_ + "/faultprobe/cgroup.subtree_control", want);
}

Result<void> CgroupV2Throttle::write_limits(const std::string& group, const ThrottleLimits& now,
                                            const std::vector<std::string>& devices_now,
                                            const ThrottleLimits& before,
                                            const std::vector<std::string>& devices_before,
                                            std::vector<std::string>* done) {
  std::string dir = root_ + group;
  const std::string period = std::to_string(kCpuPeriodUs);
  if (now.cpu_share) {
    if (auto r = write_one(dir, "cpu.max", std::to_string(cpu_quota_us(*now.cpu_share)) + " " + period, done); !r.ok())
      return r;
  } else if (before.cpu_share) {
    if (auto r = write_one(dir, "cpu.max", "max " + period, done); !r.ok()) return r;
  }
  if (now.memory_bytes) {
    // memory.high throttles and reclaims above the limit; it never invokes
    // the OOM killer, which is what a throttle (not a kill) should do.
    if (auto r = write_one(dir, "memory.high", std::to_string(*now.memory_bytes), done); !r.ok()) return r;
  } else if (before.memory_bytes) {
    if (auto r = write_one(dir, "memory.high", "max", done); !r.ok()) return r;
  }
  if (now.io_bps) {
    std::string bps = std::to_string(*now.io_bps);
    for (const auto& dev : devices_now)
      if (auto r = write_one(dir, "io.max", dev + " rbps=" + bps + " wbps=" + bps, done); !r.ok()) return r;
  }
  if (before.io_bps) {
    for (const auto& dev : devices_before) {
      if (now.io_bps && std::find(devices_now.begin(), devices_now.end(), dev) != devices_now.end()) continue;
      if (auto r = write_one(dir, "io.max", dev + " rbps=max wbps=max", done); !r.ok()) return r;
    }
  }
  if (now.pids) {
    if (auto r = write_one(dir, "pids.max", std::to_string(*now.pids), done); !r.ok()) return r;
  } else if (before.pids) {
    if (auto r = write_one(dir, "pids.max", "max", done); !r.ok()) return r;
  }
  return {};
}

}  // namespace fp
