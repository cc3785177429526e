#include <cstdio>
#include <ctime>

#include "detect/fault.h"

namespace fp {
namespace {

// "2026-11-26T08:00:00.123Z": RFC 3339, UTC, milliseconds (truncated).
std::string rfc3339_ms(uint64_t realtime_ns) {
  time_t secs = static_cast<time_t>(realtime_ns / 1'000'000'000ull);
  unsigned ms = static_cast<unsigned>(realtime_ns / 1'000'000ull % 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

}  // namespace

nlohmann::ordered_json fault_to_json(const FaultRecord& r, uint64_t realtime_ns) {
  nlohmann::ordered_json j;
  j["time"] = rfc3339_ms(realtime_ns);
  j["kind"] = r.kind == FaultRecord::Kind::Resolved ? "resolved" : "fault";
  j["class"] = fault_class_name(r.cls);
  j["severity"] = severity_name(r.severity);
  j["rule"] = r.rule;
  j["pid"] = r.culprit.tgid;
  j["comm"] = r.comm;
  j["cgroup"] = r.cgroup;
  j["victims"] = r.victims;
  j["evidence"] = nlohmann::ordered_json(r.evidence);  // keys sorted (nlohmann::json's order)
  j["start_ns"] = r.culprit.start_ns;
  j["unit"] = r.unit;
  j["container"] = r.container;
  if (r.kind == FaultRecord::Kind::Resolved) {
    uint64_t ms = r.mono_ns > r.opened_mono_ns ? (r.mono_ns - r.opened_mono_ns) / 1'000'000ull : 0;
    j["duration_ms"] = ms;
  }
  return j;
}

}  // namespace fp
