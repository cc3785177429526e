// Human durations on the command line and in config: "100ms", "1s", "1.5s", "2m".
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "util/result.h"

namespace fp {

// Accepts a non-negative decimal number followed by one unit: ns, us, ms, s, m, h
// ("1.5s", "250ms", "2m"). Surrounding whitespace is allowed; anything else
// (no unit, unknown unit, negative, empty, overflow) is an Error whose message
// says what was expected.
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);

// Shortest exact-ish rendering: "1.5s", "250ms", "2m", "0s".
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace fp
