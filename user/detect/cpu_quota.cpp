#include "detect/cpu_quota.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "act/cgroup_values.h"

namespace fp {
namespace {

std::optional<uint64_t> field(std::string_view text, std::string_view key) {
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ' ') continue;
    line.remove_prefix(key.size() + 1);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec != std::errc()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> cpu_stat_throttled_ns(const std::string& text) {
  if (auto ns = field(text, "throttled_time")) return *ns;
  if (auto us = field(text, "throttled_usec")) return *us * 1000;
  return std::nullopt;
}

CgroupCpuQuota::CgroupCpuQuota(const CgroupLayout& layout, CgroupOps& ops, std::string proc_root,
                               uint64_t refresh_ns)
    : paths_(layout, "cpu", ops, std::move(proc_root), refresh_ns) {}

std::optional<uint64_t> CgroupCpuQuota::throttled_total(const std::string& dir) {
  auto text = paths_.read(dir + "/cpu.stat");
  if (!text) return std::nullopt;
  return cpu_stat_throttled_ns(*text);
}

CgroupCpuQuota::Group& CgroupCpuQuota::group(const std::string& path, uint64_t now_ns) {
  Group& g = groups_[path];
  g.asked_ns = now_ns;
  const std::string dir = paths_.dir(path);
  if (g.quota_read_ns == 0 || now_ns >= g.quota_read_ns + paths_.refresh_ns()) {
    g.quota_read_ns = std::max<uint64_t>(now_ns, 1);
    bool limited = false;
    if (paths_.v2()) {
      auto max = paths_.read(dir + "/cpu.max");  // "max 100000" or "20000 100000"
      limited = max && !cgv::trim(*max).starts_with("max");
    } else {
      auto quota = paths_.read(dir + "/cpu.cfs_quota_us");  // -1: none
      limited = quota && !cgv::trim(*quota).starts_with("-");
    }
    if (!limited) g.samples.clear();
    g.limited = limited;
  }
  return g;
}

void CgroupCpuQuota::sweep(uint64_t now_ns) {
  if (now_ns < next_sweep_ns_) return;
  const uint64_t stale = 4 * paths_.refresh_ns();
  next_sweep_ns_ = now_ns + stale;
  paths_.sweep(now_ns);
  std::erase_if(groups_, [&](const auto& kv) { return kv.second.asked_ns + stale < now_ns; });
}

std::optional<QuotaWait> CgroupCpuQuota::quota_wait(const ProcKey& k, uint64_t now_ns, uint64_t window_ns) {
  sweep(now_ns);
  auto path = paths_.path_of(k, now_ns);
  if (!path) return std::nullopt;
  std::optional<QuotaWait> out;
  // The cgroup and each ancestor below the root (the root has no quota).
  for (std::string p = *path; p != "/" && !p.empty(); p = cgv::parent_path(p)) {
    Group& g = group(p, now_ns);
    if (!g.limited) continue;
    if (g.sampled_ns != now_ns) {
      g.sampled_ns = now_ns;
      if (auto total = throttled_total(paths_.dir(p))) g.samples.push_back(Sample{now_ns, *total});
      while (g.samples.size() > 1 && g.samples[1].at_ns + window_ns <= now_ns) g.samples.pop_front();
    }
    QuotaWait q{0, 0, p};
    if (!g.samples.empty()) {
      const Sample& first = g.samples.front();
      const Sample& last = g.samples.back();
      q.span_ns = last.at_ns - first.at_ns;
      q.throttled_ns = last.throttled_ns >= first.throttled_ns ? last.throttled_ns - first.throttled_ns : 0;
    }
    // The group that held it longest (per unit of time it was watched) speaks for it.
    auto rate = [](const QuotaWait& w) { return w.span_ns ? double(w.throttled_ns) / double(w.span_ns) : 0.0; };
    if (!out || rate(q) > rate(*out) || (out->span_ns == 0 && q.span_ns > 0)) out = std::move(q);
  }
  return out;
}

}  // namespace fp
