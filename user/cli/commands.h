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

// `faultprobe top`: the live view, from the daemon's socket or from the probe loaded here.
struct TopOptions {
  enum class Source { Auto, Local, Daemon };
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
  Source source = Source::Auto;
  std::string socket_path;       // "" = the default socket
  std::string config_path;       // local mode: "" = the built-in defaults
  bool batch = false;            // plain-text frames even on a terminal (always when stdout is not one)
  uint64_t count = 0;            // exit after this many frames; 0 = until q (or forever in batch mode)
  size_t max_rows = 0;           // batch mode: rows per frame, 0 = all
  bool force_raw_tp = false;
  bool hide_idle = false;        // start with idle processes hidden (key I)
  bool groups = false;           // start in the unit/cgroup view (key C)
};

// 0 on q / count reached, 1 on a runtime error (no daemon and the probe cannot load), 2 on a bad config.
int run_top(const TopOptions& opts);
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
// check-config --list-keys: every key the config parser knows, one SECTION.KEY a line.
int run_list_config_keys();

}  // namespace fp
