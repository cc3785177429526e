// Actions on processes: what was done (or would have been), to whom and why.
// Shared by the handler (decides), the actuator (does) and the event stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "detect/fault.h"
#include "probe/sample.h"

namespace fp {

// The process an action is aimed at, as the detector saw it. `key` carries
// the start time: the actuator refuses when the pid now belongs to another
// process.
struct Target {
  ProcKey key;
  std::string comm;
  std::string exe;
  std::string cgroup;
  std::string unit;
  std::optional<uint32_t> unit_user;  // `unit` is a unit of this uid's user manager, not the system's
  uint32_t uid = 0;
  std::string service;  // name of the [[service]] that owns it, "" if none
  // A group fault's members (fork_bomb): kill and throttle act on the whole
  // group (key is then one of them, or the group's exited originator).
  std::vector<ProcKey> group;
};

// Sets t.unit and t.unit_user from a cgroup path (systemd_unit_of).
void set_unit(Target& t, std::string_view cgroup);

enum class ActionResult { Ok, Failed, DryRun, Skipped };
const char* action_result_name(ActionResult r);

// What the actuator reports back. `new_pid` is the replacement of a restart
// or restore (0 otherwise).
struct ActionOutcome {
  ActionResult result = ActionResult::Ok;
  std::string detail;  // what was done, or why not
  ProcKey new_key;
  // A restore: what it starts from, "newest" (the newest checkpoint to
  // trust), "older" (the newer ones brought the fault back), "clean" (no
  // checkpoint); "" for other actions.
  std::string restore_source;
};

// One `action` line of the event stream:
// {"time", "kind": "action", "class", "rule", "policy", "pid", "comm",
//  "action": {"type", "result", "detail", "step", "new_pid"?, "restore_source"?}}
struct ActionRecord {
  uint64_t mono_ns = 0;
  FaultClass cls = FaultClass::Anomaly;
  std::string rule;
  std::string policy;
  Target target;
  ActionType type = ActionType::Throttle;
  std::string step;  // the ladder entry as written ("throttle:cpu=20%")
  ActionOutcome outcome;
};

nlohmann::ordered_json action_to_json(const ActionRecord& r, uint64_t realtime_ns);

// The verdict of a recovery check: after an action the handler watches the
// process (or its replacement) for the policy's recovery_window. One
// `recovery` line of the event stream:
// {"time", "kind": "recovery", "class", "rule", "policy", "pid", "comm",
//  "recovery": {"action", "step", "recovered", "detail"}}
struct RecoveryRecord {
  uint64_t mono_ns = 0;
  FaultClass cls = FaultClass::Anomaly;
  std::string rule;
  std::string policy;
  Target target;  // the process watched: the replacement after a restart or restore
  ActionType action = ActionType::Throttle;
  std::string step;  // the ladder entry whose effect was checked
  bool recovered = false;
  std::string detail;  // why (not) recovered, and what comes next
};

nlohmann::ordered_json recovery_to_json(const RecoveryRecord& r, uint64_t realtime_ns);

}  // namespace fp
