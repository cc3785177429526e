// The table of throttled processes, as every backend keeps it and as it is
// persisted: a JSON file written atomically (temporary file + rename), so a
// daemon that restarts (or crashed) can still undo its throttles.
//
// {"backend": "cgroup1", "throttles": [{"tgid": 123, "start_ns": 456,
//   "limits": {"cpu_share": 0.2, ...}, "group": "/faultprobe/p123-456",
//   "original": {"cpu": "/user.slice", ...}, "io_devices": ["254:0"]}]}
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

struct ThrottleEntry {
  ProcKey key;
  ThrottleLimits limits;
  std::string group;                            // relative to each hierarchy's root; "" for the signal backend
  std::map<std::string, std::string> original;  // hierarchy ("v2", or a v1 controller) -> path it came from
  std::vector<std::string> io_devices;          // "MAJ:MIN" the io limit was written for
  bool operator==(const ThrottleEntry&) const = default;
};

struct ThrottleState {
  std::string backend;
  std::vector<ThrottleEntry> entries;
};

// A missing file is an empty state; a malformed one is an error.
Result<ThrottleState> load_throttle_state(const std::string& path);
// Writes path.tmp, fsyncs it and renames it over path (creating the parent
// directory when missing).
Result<void> save_throttle_state(const std::string& path, const ThrottleState& state);

}  // namespace fp
