#include "detect/memory_budget.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "act/cgroup_values.h"

namespace fp {
namespace {

// v1 writes "no limit" as LONG_MAX rounded down to a page; nothing real is this big.
constexpr uint64_t kNoLimit = uint64_t{1} << 60;

uint64_t number(std::string_view text) {
  text = cgv::trim(text);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() ? v : 0;
}

}  // namespace

std::optional<uint64_t> meminfo_bytes(const std::string& text, const std::string& field) {
  const std::string key = field + ":";
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.substr(0, key.size()) != key) continue;
    line.remove_prefix(key.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    uint64_t kb = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), kb);
    if (ec != std::errc()) return std::nullopt;
    return kb * 1024;
  }
  return std::nullopt;
}

CgroupMemoryBudget::CgroupMemoryBudget(CgroupLayout layout, CgroupOps& ops, std::string proc_root, uint64_t refresh_ns)
    : paths_(layout, "memory", ops, proc_root, refresh_ns), proc_root_(std::move(proc_root)), refresh_ns_(refresh_ns) {}

const CgroupMemoryBudget::Reading& CgroupMemoryBudget::group(const std::string& path, uint64_t now_ns) {
  Reading& r = groups_[path];
  if (r.read_ns != 0 && now_ns < r.read_ns + refresh_ns_) return r;
  r = Reading{std::max<uint64_t>(now_ns, 1)};
  const std::string dir = paths_.dir(path);
  const bool v2 = paths_.v2();
  auto limit = paths_.read(dir + (v2 ? "/memory.max" : "/memory.limit_in_bytes"));
  if (!limit) return r;
  const uint64_t l = cgv::limit_value(*limit);
  if (l == cgv::kUnlimited || l >= kNoLimit) return r;
  auto usage = paths_.read(dir + (v2 ? "/memory.current" : "/memory.usage_in_bytes"));
  if (!usage) return r;
  r.limited = true;
  r.limit = l;
  r.usage = number(*usage);
  return r;
}

const CgroupMemoryBudget::Reading& CgroupMemoryBudget::host(uint64_t now_ns) {
  if (host_read_ && now_ns < host_.read_ns + refresh_ns_) return host_;
  host_read_ = true;
  host_ = Reading{std::max<uint64_t>(now_ns, 1)};
  if (auto text = paths_.read(proc_root_ + "/meminfo")) {
    auto total = meminfo_bytes(*text, "MemTotal");
    auto avail = meminfo_bytes(*text, "MemAvailable");
    if (total && avail) {
      host_.limited = true;
      host_.limit = *total;
      host_.usage = *total - std::min(*total, *avail);
    }
  }
  return host_;
}

void CgroupMemoryBudget::sweep(uint64_t now_ns) {
  if (now_ns < next_sweep_ns_) return;
  // What no forecast asked about for a while goes (processes exit, cgroups go).
  const uint64_t stale = 4 * refresh_ns_;
  next_sweep_ns_ = now_ns + stale;
  paths_.sweep(now_ns);
  std::erase_if(groups_, [&](const auto& kv) { return kv.second.read_ns + stale < now_ns; });
}

std::optional<MemoryBudget> CgroupMemoryBudget::budget(const ProcKey& k, uint64_t now_ns) {
  sweep(now_ns);
  std::optional<MemoryBudget> best;
  auto consider = [&](const Reading& r, std::string what) {
    if (!r.limited) return;
    const uint64_t left = r.limit - std::min(r.limit, r.usage);
    if (!best || left < best->available_bytes) best = MemoryBudget{left, r.limit, r.usage, std::move(what)};
  };
  consider(host(now_ns), "host MemAvailable");
  if (auto path = paths_.path_of(k, now_ns)) {
    // The cgroup and each ancestor: limits are hierarchical, the tightest one counts.
    const char* file = paths_.v2() ? "memory.max" : "memory.limit_in_bytes";
    for (std::string p = *path;; p = cgv::parent_path(p)) {
      consider(group(p, now_ns), "memory cgroup " + p + " (" + file + ")");
      if (p == "/") break;
    }
  }
  return best;
}

}  // namespace fp
