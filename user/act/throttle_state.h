// The table of throttled processes, as every backend keeps it and as it is
// persisted: a JSON file written atomically (temporary file + rename), so a
// daemon that restarts (or crashed) can still undo its throttles. The cgroup
// backends save an entry before each step that changes the host (a group
// made, a process moved, a controller enabled, a limit written), so what a
// crash leaves half done is on record and undone by the next daemon.
//
// {"backend": "cgroup1", "throttles": [{"tgid": 123, "start_ns": 456,
//   "limits": {"cpu_share": 0.2, ...}, "io_devices": ["254:0"],
//   "places": [{"hierarchy": "cpu", "mode": "child", "original": "/app",
//               "group": "/app/faultprobe-p123-456", "leaf": "",
//               "saved": [{"controller": "cpu", "file": "cpu.cfs_quota_us", "device": "", "value": "-1"}],
//               "enabled": [["/", "cpu"]]}]}]}
// Files of the previous format (one "group" at the hierarchy root and an
// "original" per hierarchy) load as places of mode "child".
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "probe/sample.h"
#include "util/result.h"

namespace fp {

// A control file's value before a throttle first wrote it, written back when
// the limit is lifted or the throttle undone.
struct SavedValue {
  std::string controller;  // "cpu", "memory", "io"/"blkio", "pids"
  std::string file;        // name in the group ("cpu.max")
  std::string device;      // "MAJ:MIN" for a per-device file, else ""
  std::string value;       // what writing it back restores
  bool operator==(const SavedValue&) const = default;
};

// Where one throttle put its limits in one hierarchy (the v2 tree, or one v1
// mount, which may carry several controllers).
struct ThrottlePlace {
  enum class Mode {
    Limit,  // alone in its cgroup: the limits are written there; undo writes the old values back
    Child,  // a new group below its cgroup (v1, or the v2 root); undo moves it back and removes the group
    Leaf,   // v2, sharing its cgroup: that cgroup's other processes went to `leaf`, it to `group`, both
            // children of `original`, which now hands its controllers down; undo puts everyone back
  };
  std::string hierarchy;  // "v2", or a v1 controller of this mount ("cpu")
  Mode mode = Mode::Child;
  std::string original;  // its cgroup in this hierarchy when throttled
  std::string group;     // where the limits are (== original for Limit)
  std::string leaf;      // Leaf: where the other processes went
  std::vector<SavedValue> saved;                             // in write order
  std::vector<std::pair<std::string, std::string>> enabled;  // (cgroup, controller) enabled in its
                                                             // cgroup.subtree_control, top first
  bool operator==(const ThrottlePlace&) const = default;
};
const char* place_mode_name(ThrottlePlace::Mode m);

struct ThrottleEntry {
  ProcKey key;
  ThrottleLimits limits;
  std::vector<ThrottlePlace> places;    // cgroup backends; none for the signal backend
  std::vector<std::string> io_devices;  // "MAJ:MIN" the io limit was written for
  bool operator==(const ThrottleEntry&) const = default;
};

struct ThrottleState {
  std::string backend;
  std::vector<ThrottleEntry> entries;
};

// A throttle's limits as the state files keep them ({"cpu_share": 0.2, ...}).
nlohmann::json limits_to_json(const ThrottleLimits& l);
ThrottleLimits limits_from_json(const nlohmann::json& j);

// A missing file is an empty state; a malformed one is an error.
Result<ThrottleState> load_throttle_state(const std::string& path);
// Writes path.tmp, fsyncs it and renames it over path (creating the parent
// directory when missing).
Result<void> save_throttle_state(const std::string& path, const ThrottleState& state);

}  // namespace fp
