// The `action` and `recovery` lines of the event stream, field by field.
#include <gtest/gtest.h>

#include "act/action.h"

namespace fp {
namespace {

// 2026-11-26T08:00:00.123Z
constexpr uint64_t kRealtime = 1795680000ull * 1'000'000'000ull + 123'456'789ull;

Target target() {
  Target t;
  t.key = ProcKey{4242, 777};
  t.comm = "batch-worker";
  t.exe = "/opt/batch/worker";
  t.cgroup = "/batch/a";
  return t;
}

TEST(ActionNames, TypesAndResults) {
  EXPECT_STREQ(action_type_name(ActionType::Throttle), "throttle");
  EXPECT_STREQ(action_type_name(ActionType::Unthrottle), "unthrottle");
  EXPECT_STREQ(action_type_name(ActionType::Restart), "restart");
  EXPECT_STREQ(action_type_name(ActionType::Restore), "restore");
  EXPECT_STREQ(action_type_name(ActionType::Kill), "kill");
  EXPECT_STREQ(action_result_name(ActionResult::Ok), "ok");
  EXPECT_STREQ(action_result_name(ActionResult::Failed), "failed");
  EXPECT_STREQ(action_result_name(ActionResult::DryRun), "dry_run");
  EXPECT_STREQ(action_result_name(ActionResult::Skipped), "skipped");
}

TEST(ActionJson, EveryField) {
  ActionRecord r;
  r.mono_ns = 5;
  r.cls = FaultClass::CpuRunaway;
  r.rule = "cpu_runaway";
  r.policy = "batch";
  r.target = target();
  r.type = ActionType::Throttle;
  r.step = "throttle:cpu=20%";
  r.outcome = ActionOutcome{ActionResult::Ok, "cpu.cfs_quota_us=20000 in /faultprobe/4242", {}};
  auto j = action_to_json(r, kRealtime);
  EXPECT_EQ(j.dump(),
            R"({"time":"2026-11-26T08:00:00.123Z","kind":"action","class":"cpu_runaway","rule":"cpu_runaway",)"
            R"("policy":"batch","pid":4242,"comm":"batch-worker","action":{"type":"throttle","result":"ok",)"
            R"("detail":"cpu.cfs_quota_us=20000 in /faultprobe/4242","step":"throttle:cpu=20%"}})");
  EXPECT_FALSE(j["action"].contains("new_pid"));  // only with a replacement
}

TEST(ActionJson, ReplacementAndSkipped) {
  ActionRecord r;
  r.cls = FaultClass::Crash;
  r.rule = "crash";
  r.policy = "svc";
  r.target = target();
  r.type = ActionType::Restart;
  r.step = "restart";
  r.outcome = ActionOutcome{ActionResult::Ok, "respawned", ProcKey{5000, 9}};
  auto j = action_to_json(r, kRealtime);
  EXPECT_EQ(j["action"]["new_pid"], 5000);
  EXPECT_EQ(j["action"]["result"], "ok");

  r.type = ActionType::Kill;
  r.step = "kill";
  r.outcome = ActionOutcome{ActionResult::Skipped, "protected: pid 1", {}};
  j = action_to_json(r, kRealtime);
  EXPECT_EQ(j["class"], "crash");
  EXPECT_EQ(j["action"]["type"], "kill");
  EXPECT_EQ(j["action"]["result"], "skipped");
  EXPECT_EQ(j["action"]["detail"], "protected: pid 1");
  EXPECT_FALSE(j["action"].contains("new_pid"));

  r.outcome = ActionOutcome{ActionResult::DryRun, "would kill pid 4242", {}};
  EXPECT_EQ(action_to_json(r, kRealtime)["action"]["result"], "dry_run");
  r.outcome = ActionOutcome{ActionResult::Failed, "EPERM", {}};
  EXPECT_EQ(action_to_json(r, kRealtime)["action"]["result"], "failed");
}

TEST(RecoveryJson, EveryField) {
  RecoveryRecord r;
  r.mono_ns = 9;
  r.cls = FaultClass::MemoryLeak;
  r.rule = "leaky";
  r.policy = "batch";
  r.target = target();
  r.action = ActionType::Restart;
  r.step = "restart";
  r.recovered = true;
  r.detail = "no memory_leak fault on pid 4242 10s after the restart";
  EXPECT_EQ(recovery_to_json(r, kRealtime).dump(),
            R"({"time":"2026-11-26T08:00:00.123Z","kind":"recovery","class":"memory_leak","rule":"leaky",)"
            R"("policy":"batch","pid":4242,"comm":"batch-worker","recovery":{"action":"restart","step":"restart",)"
            R"("recovered":true,"detail":"no memory_leak fault on pid 4242 10s after the restart"}})");
  r.recovered = false;
  r.detail = "ladder exhausted";
  auto j = recovery_to_json(r, kRealtime);
  EXPECT_EQ(j["recovery"]["recovered"], false);
  EXPECT_EQ(j["recovery"]["detail"], "ladder exhausted");
}

}  // namespace
}  // namespace fp
