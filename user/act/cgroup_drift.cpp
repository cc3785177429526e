// Defence in depth for the cgroup throttles: whoever owns a cgroup (systemd
// recomputing a slice at daemon-reload, a container runtime, the process's
// user on a delegated subtree, an admin) can undo a limit written there, or
// move the process out. Each second every throttle is looked at; what no
// longer holds is put back once (and logged), and a second time it is an
// evasion: the handler escalates to the policy's next step.
#include <algorithm>
#include <sstream>

#include <spdlog/spdlog.h>

#include "act/cgroup_throttle.h"
#include "act/cgroup_values.h"
#include "act/spawn.h"

namespace fp {
namespace {

// Whether a control file still holds the limit w wrote: a per-device line has
// every word written; a single value is the same, or lower (the kernel rounds
// a byte limit down to whole pages).
bool holds(const std::string& content, const ControlWrite& w) {
  if (!w.device.empty()) {
    std::istringstream have{std::string(cgv::device_line(content, w.device))}, want{w.value};
    std::vector<std::string> words;
    for (std::string x; have >> x;) words.push_back(x);
    for (std::string x; want >> x;)
      if (std::find(words.begin(), words.end(), x) == words.end()) return false;
    return true;
  }
  if (cgv::trim(content) == cgv::trim(w.value)) return true;
  return cgv::limit_value(content) <= cgv::limit_value(w.value);
}

}  // namespace

std::string CgroupThrottle::drift_of(const ThrottleEntry& e) {
  const pid_t pid = pid_t(e.key.tgid);
  auto start = process_start_ns(pid, proc_root_);
  if (!start || !same_start(e.key.start_ns, *start)) return "";  // gone: the handler releases it
  auto text = ops().read(proc_root_ + "/" + std::to_string(pid) + "/cgroup");
  if (!text.ok()) return "";
  const ProcCgroups pc = parse_proc_cgroups(*text);
  for (const ThrottlePlace& p : e.places) {
    auto now = original_in(pc, p.hierarchy);
    if (now && *now != p.group) return "it left " + p.group + " for " + *now;
    const std::string dir = dir_of(p.hierarchy, p.group);
    for (const auto& c : controllers_for(e.limits)) {
      if (hierarchy_of(c) != p.hierarchy) continue;
      // The writes the throttle made (from the values saved before it).
      for (const auto& w : writes_for(c, e.limits, e.io_devices, p.group, before_of(p, c))) {
        const bool ours = std::any_of(p.saved.begin(), p.saved.end(), [&](const SavedValue& s) {
          return s.controller == w.controller && s.file == w.file && s.device == w.device;
        });
        if (!ours) continue;
        auto cur = ops().read(dir + "/" + w.file);
        if (cur.ok() && !holds(*cur, w))
          return w.file + " in " + p.group + " holds \"" + std::string(cgv::trim(*cur)) + "\", not \"" + w.value + "\"";
      }
    }
  }
  return "";
}

Result<void> CgroupThrottle::reapply(ThrottleEntry& e) {
  for (const ThrottlePlace& p : e.places)
    if (auto m = ops().move(pid_t(e.key.tgid), dir_of(p.hierarchy, p.group)); !m.ok()) return m.error();
  auto r = apply_limits(e, e.limits, e.io_devices);
  if (!r.ok()) return r.error();
  return {};
}

void CgroupThrottle::tick(uint64_t now_ns) {
  next_check_ns_ = now_ns + kDriftCheckNs;
  for (auto& [key, e] : entries_) {
    const std::string what = drift_of(e);
    if (what.empty()) continue;
    const unsigned n = ++drifts_[key];
    auto r = reapply(e);
    const std::string done = r.ok() ? "put back" : "putting it back failed: " + r.error().message;
    if (n == 1 && r.ok()) {
      ++reapplied_total_;
      spdlog::warn("throttle ({}): pid {}: its throttle no longer held ({}): re-applied", name(), key.tgid, what);
      continue;
    }
    std::string detail =
        (n == 1 ? "its throttle no longer held (" : "its throttle was undone again (") + what + "); " + done;
    spdlog::warn("throttle ({}): pid {} evaded its throttle: {}", name(), key.tgid, detail);
    evasions_.push_back(ThrottleEvasion{key, std::move(detail)});
  }
}

uint64_t CgroupThrottle::next_deadline_ns() const {
  return entries_.empty() ? std::numeric_limits<uint64_t>::max() : next_check_ns_;
}

std::vector<ThrottleEvasion> CgroupThrottle::take_evasions() {
  std::vector<ThrottleEvasion> out;
  out.swap(evasions_);
  return out;
}

}  // namespace fp
