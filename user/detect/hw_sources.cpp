#include "detect/hw_sources.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace fp {

void HardwareInputs::reconfigure(const HardwareConfig& cfg) {
  if (cfg.hwmon_root != cfg_.hwmon_root) {
    hwmon_ = HwmonReader(cfg.hwmon_root);
    reported_.clear();
  }
  cfg_ = cfg;
  next_scan_ns_ = 0;
}

bool HardwareInputs::enabled(HwEvent::Source s) const {
  switch (s) {
    case HwEvent::Source::Mce: return cfg_.mce;
    case HwEvent::Source::Memory: return cfg_.memory;
    case HwEvent::Source::Pcie: return cfg_.pcie;
    case HwEvent::Source::Disk: return cfg_.disk;
    case HwEvent::Source::Thermal: return cfg_.thermal;
  }
  return false;
}

void HardwareInputs::prepare(uint64_t now_ns, EventBatch& events) {
  for (const HwEvent& e : events.hw) events_[static_cast<size_t>(e.source)]++;
  size_t before = events.hw.size();
  std::erase_if(events.hw, [&](const HwEvent& e) { return !enabled(e.source); });
  ignored_ += before - events.hw.size();

  if (!cfg_.hwmon || now_ns < next_scan_ns_) return;
  next_scan_ns_ = now_ns + static_cast<uint64_t>(std::max<int64_t>(cfg_.hwmon_interval.count(), 1));
  HwmonScan scan = hwmon_.scan();
  for (const std::string& p : scan.problems)
    if (reported_.insert(p).second) spdlog::warn("hwmon: {} (ignored; counted in status)", p);
  if (reported_.size() > 10000) reported_.clear();  // bounded; a repeat is harmless
  last_readings_ = scan.readings.size();
  events.sensors_scanned = true;
  events.sensors = std::move(scan.readings);
}

nlohmann::json HardwareInputs::status() const {
  nlohmann::json j;
  j["enabled"] = {{"mce", cfg_.mce},         {"memory", cfg_.memory},   {"pcie", cfg_.pcie},
                  {"disk", cfg_.disk},       {"thermal", cfg_.thermal}, {"hwmon", cfg_.hwmon}};
  nlohmann::json ev = nlohmann::json::object();
  for (auto s : {HwEvent::Source::Mce, HwEvent::Source::Memory, HwEvent::Source::Pcie, HwEvent::Source::Disk,
                 HwEvent::Source::Thermal})
    ev[hw_source_name(s)] = events_[static_cast<size_t>(s)];
  j["events"] = ev;
  j["events_ignored"] = ignored_;
  j["hwmon"] = {{"root", cfg_.hwmon_root},
                {"interval_ms", double(cfg_.hwmon_interval.count()) / 1e6},
                {"enabled", cfg_.hwmon},
                {"scans", hwmon_.scans()},
                {"sensors", last_readings_},
                {"unreadable", hwmon_.garbage_total()},
                {"vanished", hwmon_.vanished_total()}};
  return j;
}

}  // namespace fp
