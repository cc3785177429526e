// The small value syntaxes inside config strings: action ladder steps
// ("throttle:cpu=20%,memory=1G", "restart") and network addresses
// ("127.0.0.1:9464", "udp://loghost:514"). Each error says what is accepted,
// without a file position: the config parser adds FILE:LINE:COLUMN.
// (action_type_name lives with the action records, in act/action.cpp.)
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "config/config.h"

namespace fp {
namespace {

constexpr std::string_view kLadderHelp =
    "expected \"throttle:LIMITS\", \"restart\", \"restore\" or \"kill\"; LIMITS are cpu=20% (percent of one CPU, "
    "1%..6400%), memory=256M (bytes, K/M/G/T suffixes), io=10M (bytes/s), pids=64, several joined with \",\" "
    "as in \"throttle:cpu=20%,memory=1G\"";

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

Error ladder_error(std::string msg) { return Error{EINVAL, std::move(msg)}; }

// "256", "256K", "10M", "1G", "2T" (binary multiples; upper or lower case).
std::optional<uint64_t> parse_size(std::string_view v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end == v.data()) return std::nullopt;
  std::string_view suffix(end, static_cast<size_t>(v.data() + v.size() - end));
  unsigned shift = 0;
  if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'K': case 'k': shift = 10; break;
      case 'M': case 'm': shift = 20; break;
      case 'G': case 'g': shift = 30; break;
      case 'T': case 't': shift = 40; break;
      default: return std::nullopt;
    }
  } else if (!suffix.empty()) {
    return std::nullopt;
  }
  if (shift > 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return n << shift;
}

// "20%", "12.5%": the percent of one CPU, returned as a fraction (0.2).
std::optional<double> parse_percent(std::string_view v) {
  if (v.size() < 2 || v.back() != '%') return std::nullopt;
  v.remove_suffix(1);
  double pct = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), pct, std::chars_format::fixed);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(pct)) return std::nullopt;
  if (pct < 1 || pct > 6400) return std::nullopt;
  return pct / 100.0;
}

Result<ThrottleLimits> parse_limits(std::string_view text, std::string_view all) {
  ThrottleLimits out;
  if (text.empty())
    return ladder_error("\"throttle\" needs limits in " + quoted(all) + "; " + std::string(kLadderHelp));
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t eq = item.find('=');
    if (item.empty() || eq == std::string_view::npos || eq == 0 || eq + 1 == item.size())
      return ladder_error("malformed throttle limit " + quoted(item) + " in " + quoted(all) + "; " +
                          std::string(kLadderHelp));
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    const std::string twice = "throttle limit \"" + std::string(key) + "\" is given twice in " + quoted(all);
    if (key == "cpu") {
      if (out.cpu_share) return ladder_error(twice);
      out.cpu_share = parse_percent(value);
      if (!out.cpu_share)
        return ladder_error("bad throttle limit " + quoted(item) + " in " + quoted(all) +
                            "; expected cpu=PERCENT of one CPU from 1% to 6400% (\"cpu=20%\", \"cpu=150%\")");
    } else if (key == "memory" || key == "io") {
      std::optional<uint64_t>& slot = key == "memory" ? out.memory_bytes : out.io_bps;
      if (slot) return ladder_error(twice);
      slot = parse_size(value);
      if (!slot || *slot == 0)
        return ladder_error("bad throttle limit " + quoted(item) + " in " + quoted(all) + "; expected " +
                            std::string(key) + "=SIZE, a whole number of bytes" +
                            (key == "io" ? " per second" : "") + " above 0 with an optional K, M, G or T suffix (\"" +
                            std::string(key) + (key == "io" ? "=10M" : "=256M") + "\")");
    } else if (key == "pids") {
      if (out.pids) return ladder_error(twice);
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || n == 0)
        return ladder_error("bad throttle limit " + quoted(item) + " in " + quoted(all) +
                            "; expected pids=N, a whole number of processes from 1 (\"pids=64\")");
      out.pids = n;
    } else {
      return ladder_error("unknown throttle limit " + quoted(key) + " in " + quoted(all) +
                          "; expected cpu, memory, io or pids (\"throttle:cpu=20%,memory=1G\")");
    }
    if (comma == text.size()) break;
  }
  return out;
}

}  // namespace

Result<LadderStep> parse_ladder_step(std::string_view text) {
  LadderStep step;
  step.text = std::string(text);
  if (text == "restart") {
    step.type = ActionType::Restart;
  } else if (text == "restore") {
    step.type = ActionType::Restore;
  } else if (text == "kill") {
    step.type = ActionType::Kill;
  } else if (text == "throttle" || text.starts_with("throttle:")) {
    step.type = ActionType::Throttle;
    auto limits = parse_limits(text == "throttle" ? std::string_view{} : text.substr(9), text);
    if (!limits) return limits.error();
    step.limits = limits.value();
  } else {
    return ladder_error("unknown ladder step " + quoted(text) + "; " + std::string(kLadderHelp));
  }
  return step;
}

Result<NetAddress> parse_net_address(std::string_view text, bool with_scheme) {
  const std::string expected = with_scheme
                                   ? "expected \"udp://HOST:PORT\" or \"tcp://HOST:PORT\" (\"udp://loghost:514\")"
                                   : "expected \"HOST:PORT\" (\"127.0.0.1:9464\", \"[::1]:9464\")";
  auto bad = [&](const std::string& why) {
    return Error{EINVAL, "bad address " + quoted(text) + ": " + why + "; " + expected};
  };
  NetAddress out;
  std::string_view rest = text;
  if (with_scheme) {
    if (rest.starts_with("udp://")) {
      out.scheme = "udp";
    } else if (rest.starts_with("tcp://")) {
      out.scheme = "tcp";
    } else {
      return bad("unknown or missing scheme");
    }
    rest.remove_prefix(6);
  }
  std::string_view host, port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed \"[\"");
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') return bad("no port");
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address must be written in brackets");
  }
  if (host.empty()) return bad("no host (write 0.0.0.0 or [::] for every address)");
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) return bad("the host has a character a host name or IP address cannot have");
  }
  uint32_t p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
    return bad("the port must be a number from 1 to 65535");
  out.host = std::string(host);
  out.port = static_cast<uint16_t>(p);
  return out;
}

}  // namespace fp
