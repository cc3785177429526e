// hwmon sensors (/sys/class/hwmon/hwmonN/{temp,in}M_input and their limits),
// read by the daemon at a low rate. Sysfs is not a stable thing to read: a
// chip can go away between two scans, a driver can answer EIO or ENODATA, a
// file can hold garbage. Each is counted and said once per scan in
// `problems`, never thrown, and never turned into a reading.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "probe/sample.h"

namespace fp {

struct HwmonScan {
  std::vector<SensorReading> readings;
  std::vector<std::string> problems;  // "hwmon2/temp3_input: Input/output error", "... vanished"
  size_t garbage = 0;                 // inputs that could not be read or made no sense
  size_t vanished = 0;                // inputs seen by an earlier scan and gone now
};

class HwmonReader {
 public:
  explicit HwmonReader(std::string root = "/sys/class/hwmon") : root_(std::move(root)) {}
  HwmonScan scan();
  const std::string& root() const { return root_; }
  size_t sensors() const { return known_.size(); }   // inputs read by the last scan
  uint64_t garbage_total() const { return garbage_total_; }
  uint64_t vanished_total() const { return vanished_total_; }
  uint64_t scans() const { return scans_; }

 private:
  std::string root_;
  std::set<std::string> known_;  // input paths read by the previous scan
  uint64_t garbage_total_ = 0, vanished_total_ = 0, scans_ = 0;
};

// Which limit a reading is beyond, if any: crit/lcrit are critical, max/min
// warnings. A limit of 0 on max/crit is "not set" on many chips and ignored.
struct LimitCrossing {
  bool critical = false;
  std::string limit;  // "crit", "lcrit", "max", "min"
  double limit_value = 0;
};
std::optional<LimitCrossing> limit_crossed(const SensorReading& r);

}  // namespace fp
