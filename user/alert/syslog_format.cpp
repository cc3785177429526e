#include "alert/syslog_format.h"

#include <cstdio>
#include <ctime>

#include "util/text.h"

namespace fp {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty() || v.front() == '"') return true;
  for (unsigned char c : v)
    if (c == ' ') return true;
  return false;
}

}  // namespace

std::string kv_value(std::string_view raw) {
  // No control byte or invalid UTF-8 survives display_text(); what is left
  // to quote is the kv syntax itself (spaces, a leading quote).
  std::string value = display_text(raw);
  if (!needs_quotes(value)) return value;
  std::string out;
  out.reserve(value.size() + 2);
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string format_kv(const AlertFields& fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    if (!out.empty()) out += ' ';
    out += display_text(key);  // ours ([a-z_]+); never a control byte all the same
    out += '=';
    out += kv_value(value);
  }
  return out;
}

std::string format_structured_data(std::string_view sd_id, const AlertFields& fields) {
  if (fields.empty()) return "-";
  size_t size = sd_id.size() + 2;
  for (const auto& [key, value] : fields) size += key.size() + value.size() + 8;
  std::string out;
  out.reserve(size);
  out += '[';
  out += sd_id;
  for (const auto& [key, value] : fields) {
    // SD-NAME: 1*32 PRINTUSASCII except '=', SP, ']', '"'.
    std::string name;
    for (unsigned char c : key)
      if (c > 32 && c < 127 && c != '=' && c != ']' && c != '"' && name.size() < 32) name += static_cast<char>(c);
    if (name.empty()) continue;
    out += ' ';
    out += name;
    out += "=\"";
    // display_text(): a raw newline would end the line for a collector that
    // reads lines (UDP with some relays, files), and PARAM-VALUE is UTF-8.
    for (char c : display_text(value)) {
      if (c == '"' || c == '\\' || c == ']') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += ']';
  return out;
}

std::string rfc3339_us(uint64_t realtime_ns) {
  time_t secs = static_cast<time_t>(realtime_ns / 1'000'000'000ull);
  unsigned us = static_cast<unsigned>(realtime_ns / 1'000ull % 1'000'000ull);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
  return buf;
}

std::string rfc5424_token(std::string_view s, size_t max_len) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max_len) break;
    if (c >= 33 && c <= 126) out += static_cast<char>(c);
  }
  return out.empty() ? "-" : out;
}

std::string format_rfc5424(const Rfc5424Header& h, const std::string& structured_data, std::string_view msg) {
  std::string out;
  out.reserve(128 + h.hostname.size() + structured_data.size() + msg.size());
  out += "<" + std::to_string(h.facility * 8 + h.severity) + ">1 ";
  out += h.realtime_ns ? rfc3339_us(h.realtime_ns) : "-";
  out += ' ';
  out += rfc5424_token(h.hostname, 255);
  out += ' ';
  out += rfc5424_token(h.app_name, 48);
  out += ' ';
  out += h.procid > 0 ? std::to_string(h.procid) : "-";
  out += ' ';
  out += rfc5424_token(h.msgid, 32);
  out += ' ';
  out += structured_data.empty() ? "-" : structured_data;
  if (!msg.empty()) {
    out += ' ';
    out += display_text(msg);
  }
  return out;
}

}  // namespace fp
