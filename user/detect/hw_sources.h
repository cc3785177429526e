// The hardware inputs of a tick, per the [hardware] config: drops the probe
// events of sources switched off, and runs the hwmon scan when it is due
// (its readings go into the tick's EventBatch for hw_thermal / hw_voltage).
// Problems with sensors (vanished, garbage) are counted and logged once per
// sensor, never raised as faults.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "probe/hwmon.h"
#include "probe/sample.h"

namespace fp {

class HardwareInputs {
 public:
  explicit HardwareInputs(const HardwareConfig& cfg) : cfg_(cfg), hwmon_(cfg.hwmon_root) {}
  void reconfigure(const HardwareConfig& cfg);
  // Before the engine's tick at `now_ns`.
  void prepare(uint64_t now_ns, EventBatch& events);
  // {"hwmon": {...}, "events": {"mce": n, ...}, "enabled": {...}}
  nlohmann::json status() const;
  const HwmonReader& hwmon() const { return hwmon_; }

 private:
  bool enabled(HwEvent::Source s) const;
  HardwareConfig cfg_;
  HwmonReader hwmon_;
  uint64_t next_scan_ns_ = 0;
  size_t last_readings_ = 0;
  std::set<std::string> reported_;  // problems already logged
  uint64_t events_[5] = {0, 0, 0, 0, 0};
  uint64_t ignored_ = 0;            // events of sources switched off
};

}  // namespace fp
