#include "act/unit_throttle.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "act/cgroupfs.h"
#include "act/throttle_state.h"
#include "util/atomic_file.h"
#include "util/duration.h"
#include "util/text.h"

namespace fp {
namespace {

using nlohmann::json;

constexpr const char* kCpu = "CPUQuotaPerSecUSec";
constexpr const char* kMemory = "MemoryHigh";
constexpr const char* kTasks = "TasksMax";
constexpr const char* kIoRead = "IOReadBandwidthMax";
constexpr const char* kIoWrite = "IOWriteBandwidthMax";

// A share of one CPU as systemd's CPUQuota takes it: "20%", "12.5%"
// (hundredths of a percent at most), at least 1% (the kernel's minimum quota).
std::string percent(double share) {
  double p = std::max(1.0, std::round(share * 10000.0) / 100.0);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", p);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "%";
}

// systemd's rendering of a time span ("200ms", "1.5s", "1min 30s") in microseconds.
Result<uint64_t> parse_timespan_us(const std::string& text) {
  uint64_t total = 0;
  size_t pos = 0;
  bool any = false;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    std::string tok = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    if (tok.empty()) continue;
    if (tok.size() > 3 && tok.compare(tok.size() - 3, 3, "min") == 0) tok.replace(tok.size() - 3, 3, "m");
    auto d = parse_duration(tok);
    if (!d) return Error{EINVAL, "not a systemd time span: \"" + text + "\""};
    total += uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(*d).count());
    any = true;
  }
  if (!any) return Error{EINVAL, "not a systemd time span: \"" + text + "\""};
  return total;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string where(const std::string& unit, std::optional<uint32_t> user) {
  return user ? unit + " (user manager of uid " + std::to_string(*user) + ")" : unit;
}

}  // namespace

UnitThrottle::UnitThrottle(SystemdControl& systemd, std::string state_path, std::vector<std::string> io_devices)
    : systemd_(systemd), state_path_(std::move(state_path)), io_devices_(std::move(io_devices)) {
  load();
}

std::vector<std::string> UnitThrottle::assignments(const ThrottleLimits& l,
                                                   const std::vector<std::string>& io_devices) {
  std::vector<std::string> out;
  if (l.cpu_share) out.push_back("CPUQuota=" + percent(*l.cpu_share));
  if (l.memory_bytes) out.push_back("MemoryHigh=" + std::to_string(*l.memory_bytes));
  if (l.io_bps)
    for (const char* p : {kIoRead, kIoWrite})
      for (const auto& dev : io_devices)
        out.push_back(std::string(p) + "=/dev/block/" + dev + " " + std::to_string(*l.io_bps));
  if (l.pids) out.push_back("TasksMax=" + std::to_string(*l.pids));
  return out;
}

std::vector<std::string> UnitThrottle::properties_for(const ThrottleLimits& l) {
  std::vector<std::string> out;
  if (l.cpu_share) out.push_back(kCpu);
  if (l.memory_bytes) out.push_back(kMemory);
  if (l.io_bps) {
    out.push_back(kIoRead);
    out.push_back(kIoWrite);
  }
  if (l.pids) out.push_back(kTasks);
  return out;
}

Result<std::vector<std::string>> UnitThrottle::restore_of(const std::string& property,
                                                          const std::vector<std::string>& shown) {
  if (property == kIoRead || property == kIoWrite) {
    // An empty assignment clears the list; then every device it had.
    std::vector<std::string> out{property + "="};
    for (const auto& v : shown)
      if (!v.empty()) out.push_back(property + "=" + v);
    return out;
  }
  const std::string v = shown.empty() ? "" : shown.front();
  if (property == kCpu) {
    if (v.empty() || v == "infinity") return std::vector<std::string>{"CPUQuota="};  // unset
    auto us = parse_timespan_us(v);
    if (!us) return us.error();
    return std::vector<std::string>{"CPUQuota=" + percent(double(*us) / 1e6)};
  }
  if (property == kMemory || property == kTasks) {
    // MemoryHigh and TasksMax print "infinity" or a number, and take either back.
    if (v.empty()) return Error{EINVAL, "systemctl show printed no " + property};
    if (v != "infinity" && v.find_first_not_of("0123456789") != std::string::npos)
      return Error{EINVAL, property + " of \"" + v + "\" cannot be written back"};
    return std::vector<std::string>{property + "=" + v};
  }
  return Error{EINVAL, "unknown property " + property};
}

bool UnitThrottle::throttled(const ProcKey& k) const {
  std::lock_guard lock(mu_);
  return entries_.count(k) > 0 || claimed_.count(k) > 0;
}

std::vector<ProcKey> UnitThrottle::keys() const {
  std::lock_guard lock(mu_);
  std::vector<ProcKey> out;
  for (const auto& [k, e] : entries_) out.push_back(k);
  return out;
}

std::optional<UnitThrottleEntry> UnitThrottle::entry(const ProcKey& k) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(k);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void UnitThrottle::claim(const ProcKey& k) {
  std::lock_guard lock(mu_);
  claimed_.insert(k);
}

void UnitThrottle::unclaim(const ProcKey& k) {
  std::lock_guard lock(mu_);
  claimed_.erase(k);
}

const UnitThrottleEntry* UnitThrottle::sibling_locked(const UnitThrottleEntry& e) const {
  for (const auto& [k, o] : entries_)
    if (!(k == e.key) && o.unit == e.unit && o.user == e.user) return &o;
  return nullptr;
}

Result<std::string> UnitThrottle::apply(const ProcKey& k, const std::string& unit, std::optional<uint32_t> user,
                                        const ThrottleLimits& l) {
  UnitThrottleEntry e;
  std::optional<UnitThrottleEntry> before;
  {
    std::lock_guard lock(mu_);
    claimed_.erase(k);
    if (auto it = entries_.find(k); it != entries_.end()) before = e = it->second;
    const UnitThrottleEntry probe{k, unit, user, {}, {}, {}};
    if (const UnitThrottleEntry* s = sibling_locked(probe))
      for (const auto& [p, r] : s->restore) e.restore.emplace(p, r);  // the values from before any of ours
  }
  e.key = k;
  e.unit = unit;
  e.user = user;
  // What this throttle replaces and nobody has on record yet.
  std::vector<std::string> missing;
  for (const auto& p : properties_for(l))
    if (!e.restore.count(p)) missing.push_back(p);
  if (!missing.empty()) {
    auto shown = systemd_.show(unit, user, missing);
    if (!shown) return Error{shown.error().code, "reading " + where(unit, user) + ": " + shown.error().message};
    for (const auto& p : missing) {
      std::vector<std::string> values;
      for (const auto& [name, value] : *shown)
        if (name == p) values.push_back(value);
      auto r = restore_of(p, values);
      if (!r) return Error{r.error().code, where(unit, user) + ": " + r.error().message};
      e.restore[p] = *r;
    }
  }
  e.limits = l;
  e.applied = assignments(l, io_devices_);
  if (e.applied.empty()) return Error{EINVAL, "no limit to set on " + unit};
  {
    std::lock_guard lock(mu_);
    entries_[k] = e;
    save_locked();  // the way back is on record before the unit changes
  }
  auto r = systemd_.set_property(unit, user, e.applied);
  if (!r) {
    std::lock_guard lock(mu_);
    if (before)
      entries_[k] = *before;
    else
      entries_.erase(k);
    save_locked();
    return r.error();
  }
  return "systemctl set-property --runtime " + where(unit, user) + " " + join(e.applied) +
         " (unit-wide: it also limits the unit's other processes)";
}

Result<std::string> UnitThrottle::release(const ProcKey& k) {
  UnitThrottleEntry e;
  bool last = true;
  {
    std::lock_guard lock(mu_);
    claimed_.erase(k);
    auto it = entries_.find(k);
    if (it == entries_.end()) return Error{ENOENT, "pid " + std::to_string(k.tgid) + " has no unit throttle"};
    e = it->second;
    last = sibling_locked(e) == nullptr;
  }
  if (!last) {
    std::lock_guard lock(mu_);
    entries_.erase(k);
    save_locked();
    return where(e.unit, e.user) + " stays throttled: another of its processes is";
  }
  std::vector<std::string> back;
  for (const auto& [p, r] : e.restore) back.insert(back.end(), r.begin(), r.end());
  if (!back.empty()) {
    auto r = systemd_.set_property(e.unit, e.user, back);
    if (!r) return r.error();  // kept on record: a later release may still succeed
  }
  std::lock_guard lock(mu_);
  entries_.erase(k);
  save_locked();
  return "restored on " + where(e.unit, e.user) + ": " + join(back);
}

void UnitThrottle::save_locked() const {
  if (state_path_.empty()) return;
  json list = json::array();
  for (const auto& [k, e] : entries_) {
    json j = {{"tgid", k.tgid},       {"start_ns", k.start_ns}, {"unit", e.unit}, {"limits", limits_to_json(e.limits)},
              {"applied", e.applied}, {"restore", e.restore}};
    if (e.user) j["user"] = *e.user;
    list.push_back(std::move(j));
  }
  json doc = {{"backend", "systemd"}, {"throttles", list}};
  if (auto r = write_file_atomic(state_path_, safe_dump(doc, 2) + "\n"); !r)
    spdlog::error("unit throttles: cannot save {}: {}", state_path_, r.error().message);
}

void UnitThrottle::load() {
  if (state_path_.empty()) return;
  auto text = read_text(state_path_);
  if (!text) {
    if (text.error().code != ENOENT)
      spdlog::error("unit throttles: cannot read {}: {}", state_path_, text.error().message);
    return;
  }
  try {
    json doc = json::parse(*text);
    for (const auto& j : doc.at("throttles")) {
      UnitThrottleEntry e;
      e.key.tgid = j.at("tgid").get<uint32_t>();
      e.key.start_ns = j.at("start_ns").get<uint64_t>();
      e.unit = j.at("unit").get<std::string>();
      if (!valid_unit_name(e.unit)) throw std::invalid_argument("not a unit name: " + e.unit);
      if (j.contains("user")) e.user = j.at("user").get<uint32_t>();
      e.limits = limits_from_json(j.value("limits", json::object()));
      e.applied = j.value("applied", std::vector<std::string>{});
      e.restore = j.at("restore").get<std::map<std::string, std::vector<std::string>>>();
      entries_[e.key] = std::move(e);
    }
  } catch (const std::exception& ex) {
    entries_.clear();
    spdlog::error("unit throttles: {} is not a faultprobe state file, left as it is: {}", state_path_, ex.what());
    return;
  }
  if (!entries_.empty())
    spdlog::info("unit throttles: {} left in place by a previous run, from {}", entries_.size(), state_path_);
}

}  // namespace fp
