// The fault records the engine emits (classes and severities: detect/fault_class.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "detect/fault_class.h"
#include "probe/sample.h"

namespace fp {

// One line of the event stream: a fault opening, or resolving.
struct FaultRecord {
  enum class Kind { Fault, Resolved };
  Kind kind = Kind::Fault;
  uint64_t mono_ns = 0;       // CLOCK_MONOTONIC of the tick that decided it
  FaultClass cls = FaultClass::Anomaly;
  Severity severity = Severity::Warning;
  std::string rule;           // rule name ("cpu_runaway" for the built-in one)
  ProcKey culprit;            // pid = culprit.tgid
  std::string comm;
  std::string cgroup;         // cgroup path ("" if unknown)
  std::string unit;           // systemd unit ("" if none)
  std::optional<uint32_t> unit_user;  // uid whose user manager owns `unit`; nullopt: the system manager's
  std::string container;      // container id ("" if none)
  std::vector<uint32_t> victims;
  nlohmann::json evidence = nlohmann::json::object();  // the numbers that decided it
  uint64_t opened_mono_ns = 0;  // for Resolved: when the fault opened
  // Hardware faults: what the fault is about besides the (pid 0) culprit, e.g.
  // "sda" or "cpu 0 bank 4"; one open fault per (rule, culprit, subject).
  std::string subject;
  std::vector<ProcKey> victim_keys;  // victims with their start times (policies act on them)
  // A group fault's live members (fork_bomb), refreshed while it is open; a
  // kill or throttle acts on all of them.
  std::vector<ProcKey> group;
  // Open faults (FaultTracker::open_faults): the last tick a finding held it
  // (a fault whose condition is gone stays open for the rule's `clear`).
  // 0: not known.
  uint64_t last_seen_ns = 0;
};

// The JSON line of the event stream (issue contract):
// {"time": RFC3339 UTC with ms, "kind": "fault"|"resolved", "class", "severity", "rule", "pid",
//  "comm", "cgroup", "victims": [...], "evidence": {...}} (+ "start_ns", "unit", "unit_user" (a user unit), "container",
//  "duration_ms" for resolved). `realtime_ns` is the wall-clock time of the record.
nlohmann::ordered_json fault_to_json(const FaultRecord& r, uint64_t realtime_ns);

// "2026-11-26T08:00:00.123Z": RFC 3339, UTC, milliseconds (truncated).
std::string rfc3339_ms(uint64_t realtime_ns);

// The daemon's state file keeps open faults across a restart: every field of
// the record, monotonic times included (valid for the same boot only).
nlohmann::json fault_state_to_json(const FaultRecord& r);
// Lenient: nullopt when a required field (class, rule, pid, start_ns) is missing or wrong.
std::optional<FaultRecord> fault_state_from_json(const nlohmann::json& j);

}  // namespace fp
