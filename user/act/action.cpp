// Names of actions and results, and the `action` / `recovery` lines of the
// event stream (the `fault` / `resolved` ones are in detect/fault_json.cpp).
#include "act/action.h"

#include <cstdio>
#include <ctime>

#include "detect/systemd_unit.h"

namespace fp {

void set_unit(Target& t, std::string_view cgroup) {
  SystemdUnit u = systemd_unit_of(cgroup);
  t.unit = std::move(u.name);
  t.unit_user = u.user;
}
namespace {


// The fields every handling line starts with.
nlohmann::ordered_json head(const char* kind, uint64_t realtime_ns, FaultClass cls, const std::string& rule,
                            const std::string& policy, const Target& t) {
  nlohmann::ordered_json j;
  j["time"] = rfc3339_ms(realtime_ns);
  j["kind"] = kind;
  j["class"] = fault_class_name(cls);
  j["rule"] = rule;
  j["policy"] = policy;
  j["pid"] = t.key.tgid;
  j["comm"] = t.comm;
  return j;
}

}  // namespace

const char* action_type_name(ActionType t) {
  switch (t) {
    case ActionType::Throttle: return "throttle";
    case ActionType::Unthrottle: return "unthrottle";
    case ActionType::Restart: return "restart";
    case ActionType::Restore: return "restore";
    case ActionType::Kill: return "kill";
  }
  return "unknown";
}

const char* action_result_name(ActionResult r) {
  switch (r) {
    case ActionResult::Ok: return "ok";
    case ActionResult::Failed: return "failed";
    case ActionResult::DryRun: return "dry_run";
    case ActionResult::Skipped: return "skipped";
  }
  return "unknown";
}

nlohmann::ordered_json action_to_json(const ActionRecord& r, uint64_t realtime_ns) {
  nlohmann::ordered_json j = head("action", realtime_ns, r.cls, r.rule, r.policy, r.target);
  nlohmann::ordered_json a;
  a["type"] = action_type_name(r.type);
  a["result"] = action_result_name(r.outcome.result);
  a["detail"] = r.outcome.detail;
  a["step"] = r.step;
  if (r.outcome.new_key.tgid != 0) a["new_pid"] = r.outcome.new_key.tgid;
  j["action"] = std::move(a);
  return j;
}

nlohmann::ordered_json recovery_to_json(const RecoveryRecord& r, uint64_t realtime_ns) {
  nlohmann::ordered_json j = head("recovery", realtime_ns, r.cls, r.rule, r.policy, r.target);
  nlohmann::ordered_json rec;
  rec["action"] = action_type_name(r.action);
  rec["step"] = r.step;
  rec["recovered"] = r.recovered;
  rec["detail"] = r.detail;
  j["recovery"] = std::move(rec);
  return j;
}

}  // namespace fp
