// Per-cgroup pressure for host_pressure rules that name a cgroup v2 group
// (`cgroup = "/system.slice/db.service"`): that group's own PSI files
// (<v2 mount><path>/{cpu,memory,io}.pressure), read at every tick and woken
// by the same triggers as the host's. The kernel keeps PSI per group of the
// v2 hierarchy whichever controllers are enabled there, so this works on a
// hybrid host too (its v2 tree mounted beside the v1 controllers).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "detect/host_pressure.h"

namespace fp {

// What a detector asks: a group's pressure at this tick (nullptr: not watched
// or not readable -- the rule sees nothing, as host_pressure without PSI).
class CgroupPressureSource {
 public:
  virtual ~CgroupPressureSource() = default;
  virtual const HostPressure* of(const std::string& path) const = 0;
};

class CgroupPressureSet final : public CgroupPressureSource {
 public:
  // v2_root: the cgroup2 mount ("" when the host has none: every rule naming
  // a group then logs once that it sees nothing).
  explicit CgroupPressureSet(std::string v2_root, PsiTrigger trigger = {})
      : v2_root_(std::move(v2_root)), trigger_(trigger) {}
  // The groups the enabled rules name; groups no longer named are dropped,
  // new ones armed. Called at start and on every reload.
  void set_rules(const std::vector<RuleConfig>& rules);
  bool empty() const { return groups_.empty(); }
  void read(uint64_t now_ns);
  std::vector<int> trigger_fds() const;
  // True when `fd` is one of this set's triggers (then handled).
  bool fired(int fd, bool error);
  const HostPressure* of(const std::string& path) const override;
  // {"/path": {...PressureInputs::status()...}, ...}
  nlohmann::json status() const;

 private:
  std::string v2_root_;
  PsiTrigger trigger_;
  std::map<std::string, std::unique_ptr<PressureInputs>> groups_;
};

// Whether a process whose cgroup (v2) path is `proc_cgroup` is in `group` or below it.
bool in_cgroup(const std::string& proc_cgroup, const std::string& group);

}  // namespace fp
