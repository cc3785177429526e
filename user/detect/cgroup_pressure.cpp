#include "detect/cgroup_pressure.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

namespace fp {

void CgroupPressureSet::set_rules(const std::vector<RuleConfig>& rules) {
  std::set<std::string> wanted;
  for (const RuleConfig& r : rules)
    if (r.enabled && r.cls == FaultClass::HostPressure && !r.pressure.cgroup.empty()) wanted.insert(r.pressure.cgroup);
  std::erase_if(groups_, [&](const auto& g) { return wanted.count(g.first) == 0; });
  for (const std::string& path : wanted) {
    if (groups_.count(path) != 0) continue;
    if (v2_root_.empty()) {
      spdlog::error("host_pressure: the rule on cgroup {} needs a cgroup v2 mount and this host has none; it sees "
                    "nothing, the rest of the daemon runs on",
                    path);
    }
    auto in = std::make_unique<PressureInputs>(PsiFiles::cgroup(v2_root_ + (path == "/" ? "" : path)), trigger_);
    if (!v2_root_.empty()) in->arm();
    groups_.emplace(path, std::move(in));
  }
}

void CgroupPressureSet::read(uint64_t now_ns) {
  if (v2_root_.empty()) return;
  for (auto& [path, in] : groups_) in->read(now_ns);
}

std::vector<int> CgroupPressureSet::trigger_fds() const {
  std::vector<int> out;
  for (const auto& [path, in] : groups_) {
    std::vector<int> fds = in->trigger_fds();
    out.insert(out.end(), fds.begin(), fds.end());
  }
  return out;
}

bool CgroupPressureSet::fired(int fd, bool error) {
  for (auto& [path, in] : groups_) {
    std::vector<int> fds = in->trigger_fds();
    if (std::find(fds.begin(), fds.end(), fd) == fds.end()) continue;
    in->fired(fd, error);
    return true;
  }
  return false;
}

const HostPressure* CgroupPressureSet::of(const std::string& path) const {
  auto it = groups_.find(path);
  if (it == groups_.end() || v2_root_.empty()) return nullptr;
  return &it->second->now();
}

nlohmann::json CgroupPressureSet::status() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [path, in] : groups_) j[path] = in->status();
  return j;
}

bool in_cgroup(const std::string& proc_cgroup, const std::string& group) {
  if (group == "/") return true;
  return proc_cgroup == group || (proc_cgroup.size() > group.size() && proc_cgroup.compare(0, group.size(), group) == 0 &&
                                  proc_cgroup[group.size()] == '/');
}

}  // namespace fp
