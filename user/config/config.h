// The daemon's configuration: TOML file -> typed structs. The parser never
// reaches into the engine; the engine is built from these.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detect/fault.h"
#include "util/result.h"

namespace fp {

// Which processes a rule (or later a policy) applies to. Every field that is
// set must match; an empty match matches everything.
struct ProcessMatch {
  std::optional<std::string> comm;    // glob (fnmatch) on comm
  std::optional<std::string> exe;     // glob on the executable path
  std::optional<std::string> cgroup;  // glob on the cgroup path
  std::optional<std::string> unit;    // glob on the systemd unit
  std::optional<uint32_t> uid;
  bool empty() const { return !comm && !exe && !cgroup && !unit && !uid; }
};

struct RuleConfig {
  std::string name;                 // built-ins are named after their class
  FaultClass cls = FaultClass::Anomaly;
  bool enabled = true;
  Severity severity = Severity::Warning;
  double threshold = 0;             // opens above this (unit per class, see defaults in config.cpp)
  double resolve = 0;               // an open fault stays open while above this (hysteresis)
  std::chrono::nanoseconds hold{0};     // `for`: how long the condition must hold before opening
  std::chrono::nanoseconds window{std::chrono::seconds(10)};  // span the metric is computed over
  std::chrono::nanoseconds clear{std::chrono::seconds(0)};    // how long it must stay clear to resolve
  uint32_t count = 0;               // class-specific count (crash_loop: crashes in window; io: min requests)
  ProcessMatch match;
};

struct Config {
  std::chrono::nanoseconds sample_interval{std::chrono::milliseconds(100)};
  std::vector<RuleConfig> rules;    // built-ins (after overrides) then added rules
  std::vector<std::string> protected_comms;  // never blamed as culprit (besides pid 1 and kernel threads)
  std::string source;               // file it came from ("<built-in>")
};

// The built-in defaults: one rule per class, sensible on a busy server.
Config default_config();

// Parses TOML text. Errors read "FILE:LINE:COLUMN: what was wrong, what was expected".
Result<Config> parse_config(std::string_view toml_text, std::string_view filename);
Result<Config> load_config_file(const std::string& path);

}  // namespace fp
