#include "util/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace fp {
namespace {

using u128 = unsigned __int128;

constexpr uint64_t kNsPerUs = 1000;
constexpr uint64_t kNsPerMs = 1000 * kNsPerUs;
constexpr uint64_t kNsPerS = 1000 * kNsPerMs;
constexpr uint64_t kNsPerM = 60 * kNsPerS;
constexpr uint64_t kNsPerH = 60 * kNsPerM;
constexpr uint64_t kMaxNs = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

struct Unit {
  std::string_view name;
  uint64_t ns;
};
constexpr std::array<Unit, 6> kUnits{{
    {"ns", 1}, {"us", kNsPerUs}, {"ms", kNsPerMs}, {"s", kNsPerS}, {"m", kNsPerM}, {"h", kNsPerH}}};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Error invalid(std::string_view text, std::string_view why) {
  std::string msg = "invalid duration \"";
  msg.append(text);
  msg += "\": ";
  msg.append(why);
  return Error{0, std::move(msg)};
}

constexpr std::string_view kExpected =
    "expected a number followed by a unit (ns, us, ms, s, m, h), e.g. 500ms or 2s";

// "<int>.<frac>" rendered with trailing zeros (and a bare dot) removed.
std::string with_fraction(uint64_t whole, uint64_t frac, int frac_digits) {
  std::string out = std::to_string(whole);
  if (frac == 0) return out;
  std::string f = std::to_string(frac);
  f.insert(0, static_cast<size_t>(frac_digits) - f.size(), '0');
  while (!f.empty() && f.back() == '0') f.pop_back();
  out += '.';
  out += f;
  return out;
}

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  size_t i = 0;

  // Integer part: at least one digit. Accumulated in 128 bits so overflow is a
  // plain comparison; anything beyond int64 nanoseconds is rejected below.
  u128 whole = 0;
  bool whole_too_big = false;
  size_t int_start = i;
  while (i < s.size() && is_digit(s[i])) {
    whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
    if (whole > kMaxNs) {  // saturate: only "too large" matters from here
      whole_too_big = true;
      whole = kMaxNs + 1;
    }
    ++i;
  }
  if (i == int_start) {
    if (!s.empty() && s[0] == '-') return invalid(text, "must not be negative; " + std::string(kExpected));
    return invalid(text, kExpected);
  }

  // Optional fraction: a dot and at least one digit. Digits past the 18th
  // cannot change the result by a whole nanosecond (units are <= 3.6e12 ns).
  u128 frac = 0, frac_scale = 1;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t frac_start = i;
    while (i < s.size() && is_digit(s[i])) {
      if (i - frac_start < 18) {
        frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
        frac_scale *= 10;
      }
      ++i;
    }
    if (i == frac_start) return invalid(text, kExpected);
  }

  std::string_view unit_name = s.substr(i);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (u.name == unit_name) unit = &u;
  }
  if (unit == nullptr) return invalid(text, kExpected);

  u128 total = whole * unit->ns + frac * unit->ns / frac_scale;  // fraction truncated to whole ns
  if (whole_too_big || total > kMaxNs) {
    return invalid(text, "too large (the longest duration is about 292 years)");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

std::string format_duration(std::chrono::nanoseconds d) {
  int64_t count = d.count();
  if (count == 0) return "0s";
  std::string sign;
  uint64_t ns = static_cast<uint64_t>(count);
  if (count < 0) {
    sign = "-";
    ns = 0 - ns;  // well defined for INT64_MIN too
  }

  // Whole hours or minutes read better than seconds ("2m", "1h", "90m"); the
  // check is on the value rounded to milliseconds, the precision shown below.
  if (ns >= kNsPerM) {
    uint64_t ms = ns / kNsPerMs + ((ns % kNsPerMs) * 2 >= kNsPerMs ? 1 : 0);
    if (ms % (kNsPerH / kNsPerMs) == 0) return sign + std::to_string(ms / (kNsPerH / kNsPerMs)) + "h";
    if (ms % (kNsPerM / kNsPerMs) == 0) return sign + std::to_string(ms / (kNsPerM / kNsPerMs)) + "m";
  }

  // Otherwise the largest of s/ms/us in which the value, rounded to three
  // decimals, is at least 1 ("1.5s", "250ms", "1.234us"); below 1us, whole ns.
  for (const Unit& u : {kUnits[3], kUnits[2], kUnits[1]}) {
    uint64_t step = u.ns / 1000;
    uint64_t milli_units = ns / step + ((ns % step) * 2 >= step ? 1 : 0);  // half up
    if (milli_units >= 1000) {
      return sign + with_fraction(milli_units / 1000, milli_units % 1000, 3) + std::string(u.name);
    }
  }
  return sign + std::to_string(ns) + "ns";
}

}  // namespace fp
