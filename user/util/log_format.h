// Log lines (spdlog: stderr, and the journal under systemd) carry process
// names, paths and cgroup names. Every message goes through display_text()
// (util/text.h) in the formatter, whatever the call site passed: a name
// cannot end a log line early, forge the next one or drive the terminal.
#pragma once

#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace fp {

// spdlog's pattern formatter for `pattern`, whose %v (the message) is
// written through display_text().
std::unique_ptr<spdlog::formatter> make_safe_log_formatter(const std::string& pattern);

}  // namespace fp
