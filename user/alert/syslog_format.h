// The words of an alert line, in the two shapes syslog carries them:
//  - key=value text for the local syslog(3) line (rsyslog writes it RFC 3164-style
//    to /var/log/syslog, where only the message text survives), and
//  - RFC 5424 with structured data, for forwarding to a collector.
// Pure functions: everything here is unit-tested without sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fp {

// Ordered key/value pairs: the order is the order a reader sees them in.
// Keys are identifiers ([a-z_]+); values are arbitrary bytes.
using AlertFields = std::vector<std::pair<std::string, std::string>>;

// The private-enterprise-number SD-ID our fields travel under.
inline constexpr const char* kSdId = "faultprobe@32473";
inline constexpr int kFacilityDaemon = 3;  // LOG_DAEMON >> 3

// `key=value key2="value with spaces"`. Every value goes through
// display_text() (util/text.h: control bytes and invalid UTF-8 as \xHH, so a
// line stays one line); it is then written bare unless it is empty, contains
// a space or starts with '"'; quoted values escape '\\' and '"'. JSON values
// such as evidence={"cores":0.98} stay bare and readable. Fields that come
// from processes are escape_text()ed by the Alerter before they get here.
std::string format_kv(const AlertFields& fields);
// One value as format_kv writes it (quoted or not).
std::string kv_value(std::string_view value);

// `[faultprobe@32473 class="cpu_runaway" pid="123"]`; "-" (NILVALUE) when
// `fields` is empty. PARAM-VALUEs go through display_text() (UTF-8, one line)
// and escape '"', '\\' and ']' (RFC 5424 6.3.3); PARAM-NAMEs are reduced to
// the allowed characters and 32 bytes.
std::string format_structured_data(std::string_view sd_id, const AlertFields& fields);

// "2024-05-01T12:00:00.123456Z" (RFC 3339, UTC, microseconds).
std::string rfc3339_us(uint64_t realtime_ns);

// RFC 5424 header fields: PRINTUSASCII (33..126) only, at most `max_len`
// bytes; "-" when nothing is left.
std::string rfc5424_token(std::string_view s, size_t max_len);

struct Rfc5424Header {
  int facility = kFacilityDaemon;
  int severity = 6;               // LOG_INFO
  uint64_t realtime_ns = 0;
  std::string hostname;           // "" -> "-"
  std::string app_name = "faultprobed";
  int procid = 0;                 // 0 -> "-"
  std::string msgid;              // "" -> "-"
};

// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` with
// PRI = facility * 8 + severity. MSG goes through display_text() (UTF-8,
// no BOM, no control byte: a line stays one line).
std::string format_rfc5424(const Rfc5424Header& h, const std::string& structured_data, std::string_view msg);

}  // namespace fp
