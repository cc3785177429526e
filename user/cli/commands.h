// The CLI's verbs. Each returns the process exit code.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace fp {

struct SnapshotOptions {
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
  bool json = false;
  std::vector<uint32_t> pids;  // empty: all
  size_t max_rows = 0;         // table only; 0: all
  bool force_raw_tp = false;
};

int run_snapshot(const SnapshotOptions& opts);

// status / events talk to a running faultprobed over its socket (exit 1 when none answers).
struct StatusOptions {
  bool json = false;
  std::string socket = "/run/faultprobe/faultprobe.sock";
};
int run_status(const StatusOptions& opts);

struct EventsOptions {
  bool follow = false;
  bool json = false;
  uint64_t backlog = 100;  // recent events first (the daemon keeps up to 1000)
  std::string socket = "/run/faultprobe/faultprobe.sock";
};
int run_events(const EventsOptions& opts);

// Validates a config file: 0 and a summary when valid, 2 and FILE:LINE:COL errors when not.
int run_check_config(const std::string& path, bool json);

}  // namespace fp
