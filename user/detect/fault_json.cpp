#include <cstdio>
#include <ctime>

#include "detect/fault.h"

namespace fp {

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
  if (r.unit_user) j["unit_user"] = *r.unit_user;  // a user manager's unit, not the system's
  j["container"] = r.container;
  if (r.kind == FaultRecord::Kind::Resolved) {
    uint64_t ms = r.mono_ns > r.opened_mono_ns ? (r.mono_ns - r.opened_mono_ns) / 1'000'000ull : 0;
    j["duration_ms"] = ms;
  }
  return j;
}

nlohmann::json fault_state_to_json(const FaultRecord& r) {
  nlohmann::json j;
  j["kind"] = r.kind == FaultRecord::Kind::Resolved ? "resolved" : "fault";
  j["mono_ns"] = r.mono_ns;
  j["class"] = fault_class_name(r.cls);
  j["severity"] = severity_name(r.severity);
  j["rule"] = r.rule;
  j["pid"] = r.culprit.tgid;
  j["start_ns"] = r.culprit.start_ns;
  j["comm"] = r.comm;
  j["cgroup"] = r.cgroup;
  j["unit"] = r.unit;
  if (r.unit_user) j["unit_user"] = *r.unit_user;
  j["container"] = r.container;
  j["victims"] = r.victims;
  j["evidence"] = r.evidence;
  j["opened_mono_ns"] = r.opened_mono_ns;
  if (!r.subject.empty()) j["subject"] = r.subject;
  if (!r.victim_keys.empty()) {
    nlohmann::json keys = nlohmann::json::array();
    for (const ProcKey& k : r.victim_keys) keys.push_back({k.tgid, k.start_ns});
    j["victim_keys"] = keys;
  }
  return j;
}

std::optional<FaultRecord> fault_state_from_json(const nlohmann::json& j) {
  try {
    if (!j.is_object()) return std::nullopt;
    FaultRecord r;
    auto cls = parse_fault_class(j.at("class").get<std::string>());
    if (!cls) return std::nullopt;
    r.cls = *cls;
    r.kind = j.value("kind", "fault") == "resolved" ? FaultRecord::Kind::Resolved : FaultRecord::Kind::Fault;
    r.rule = j.at("rule").get<std::string>();
    r.culprit.tgid = j.at("pid").get<uint32_t>();
    r.culprit.start_ns = j.at("start_ns").get<uint64_t>();
    r.mono_ns = j.value("mono_ns", uint64_t{0});
    r.severity = parse_severity(j.value("severity", "warning")).value_or(Severity::Warning);
    r.comm = j.value("comm", "");
    r.cgroup = j.value("cgroup", "");
    r.unit = j.value("unit", "");
    if (auto it = j.find("unit_user"); it != j.end() && it->is_number_unsigned()) r.unit_user = it->get<uint32_t>();
    r.container = j.value("container", "");
    r.victims = j.value("victims", std::vector<uint32_t>{});
    r.evidence = j.value("evidence", nlohmann::json::object());
    r.opened_mono_ns = j.value("opened_mono_ns", uint64_t{0});
    r.subject = j.value("subject", "");
    if (auto it = j.find("victim_keys"); it != j.end() && it->is_array())
      for (const auto& k : *it) r.victim_keys.push_back(ProcKey{k.at(0).get<uint32_t>(), k.at(1).get<uint64_t>()});
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace fp
