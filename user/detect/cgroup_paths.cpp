#include "detect/cgroup_paths.h"

#include <algorithm>

namespace fp {

ControllerPaths::ControllerPaths(const CgroupLayout& layout, const std::string& controller, CgroupOps& ops,
                                 std::string proc_root, uint64_t refresh_ns)
    : controller_(controller), ops_(ops), proc_root_(std::move(proc_root)), refresh_ns_(refresh_ns) {
  if (auto it = layout.v1.find(controller); it != layout.v1.end()) {
    mount_ = it->second;
  } else if (!layout.v2_root.empty() &&
             std::count(layout.v2_controllers.begin(), layout.v2_controllers.end(), controller)) {
    mount_ = layout.v2_root;
    v2_ = true;
  }
}

std::optional<std::string> ControllerPaths::read(const std::string& path) {
  ++reads_;
  auto r = ops_.read(path);
  if (!r.ok()) return std::nullopt;
  return *r;
}

std::optional<std::string> ControllerPaths::path_of(const ProcKey& k, uint64_t now_ns) {
  if (mount_.empty()) return std::nullopt;
  Entry& e = paths_[k];
  if (e.read_ns == 0 || now_ns >= e.read_ns + refresh_ns_) {
    e.read_ns = std::max<uint64_t>(now_ns, 1);
    e.path.reset();
    if (auto text = read(proc_root_ + "/" + std::to_string(k.tgid) + "/cgroup")) {
      ProcCgroups pc = parse_proc_cgroups(*text);
      if (v2_) {
        e.path = pc.v2;
      } else if (auto it = pc.v1.find(controller_); it != pc.v1.end()) {
        e.path = it->second;
      }
    }
  }
  return e.path;
}

void ControllerPaths::sweep(uint64_t now_ns) {
  if (now_ns < next_sweep_ns_) return;
  const uint64_t stale = 4 * refresh_ns_;
  next_sweep_ns_ = now_ns + stale;
  std::erase_if(paths_, [&](const auto& kv) { return kv.second.read_ns + stale < now_ns; });
}

}  // namespace fp
