// Reading the values cgroup control files hold, to compare a throttle's limit
// with the one already in force, and the path arithmetic of cgroup paths
// ("/a/b", the root being "/").
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace fp::cgv {

inline constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// The text without surrounding blanks and newlines.
std::string_view trim(std::string_view s);
// The first word as a number; "max", "-1", "" and anything else are kUnlimited.
uint64_t limit_value(std::string_view text);
// kUnlimited as "max", else the number.
std::string limit_text(uint64_t v);
// The line of a per-device file ("254:0 rbps=1 wbps=max", "254:0 1048576")
// for dev, "" if none.
std::string_view device_line(std::string_view text, std::string_view dev);
// KEY=VALUE's value in such a line: kUnlimited for "max" or when missing.
uint64_t keyed_value(std::string_view line, std::string_view key);
// quota/period as a share of one CPU; a quota of "max" or -1 is unlimited (infinity).
double cpu_ratio(std::string_view quota, std::string_view period);

std::string parent_path(const std::string& path);
std::string child_path(const std::string& path, const std::string& name);
// Whether path lies strictly below dir.
bool below(const std::string& path, const std::string& dir);

}  // namespace fp::cgv
