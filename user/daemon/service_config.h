// What the daemon is started with (its command line) and the config it
// runs from it: the file, checked to be root's alone, or the built-ins.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/result.h"

namespace fp {

struct ServiceOptions {
  std::string config_path;       // "" = built-in defaults
  std::string events_json;       // "" = none, "-" = stdout, else a file appended to
  std::string exits_json;        // "" = none, else every exit record's final counters, one JSON line each (bench)
  bool dry_run = false;
  bool force_raw_tp = false;
  std::vector<std::string> raw_tp_hooks;  // ProbeOptions::raw_tp_hooks (tests)
  // Command-line overrides of the config's [daemon] pin_dir and lock_path.
  std::optional<std::string> pin_dir;   // bpffs dir the probe is pinned in / taken over from ("" = none)
  std::optional<std::string> lock_path;
};

// The config a daemon with these options runs (the file, or the built-ins),
// with the command-line overrides applied. Errors are the config's.
Result<Config> load_service_config(const ServiceOptions& opts);

// The config file must not be writable by anyone but root (as sshd insists):
// it decides which processes the daemon may kill.
Result<void> check_config_file_safe(const std::string& path);

}  // namespace fp
