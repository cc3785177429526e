#include "detect/fault.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fp {
namespace {

// 2026-11-26T08:00:00Z
constexpr uint64_t kWall = 1795680000ull * 1'000'000'000ull;

FaultRecord record() {
  FaultRecord r;
  r.kind = FaultRecord::Kind::Fault;
  r.mono_ns = 5'000'000'000;
  r.cls = FaultClass::Crash;
  r.severity = Severity::Critical;
  r.rule = "crash";
  r.culprit = {4242, 123456789};
  r.comm = "server";
  r.cgroup = "/system.slice/server.service";
  r.unit = "server.service";
  r.victims = {1, 2};
  r.evidence["signal"] = 11;
  r.evidence["core_dumped"] = true;
  return r;
}

std::vector<std::string> keys(const nlohmann::ordered_json& j) {
  std::vector<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
  return out;
}

TEST(FaultJson, FaultLine) {
  auto j = fault_to_json(record(), kWall + 123'456'789);
  EXPECT_EQ(j["time"], "2026-11-26T08:00:00.123Z");
  EXPECT_EQ(keys(j), (std::vector<std::string>{"time", "kind", "class", "severity", "rule", "pid", "comm", "cgroup",
                                                "victims", "evidence", "start_ns", "unit", "container"}));
  EXPECT_EQ(j["kind"], "fault");
  EXPECT_EQ(j["class"], "crash");
  EXPECT_EQ(j["severity"], "critical");
  EXPECT_EQ(j["pid"], 4242);
  EXPECT_EQ(j["start_ns"], 123456789u);
  EXPECT_EQ(j["victims"], nlohmann::ordered_json::array({1, 2}));
  EXPECT_EQ(j["evidence"]["signal"], 11);
  EXPECT_EQ(j["unit"], "server.service");
  EXPECT_EQ(j["container"], "");
  EXPECT_EQ(j.dump().find('\n'), std::string::npos);  // one line
}

TEST(FaultJson, AUserUnitSaysWhoseManagerItIs) {
  FaultRecord r = record();
  r.cgroup = "/user.slice/user-1000.slice/user@1000.service/app.slice/server.service";
  r.unit_user = 1000;
  auto j = fault_to_json(r, kWall);
  EXPECT_EQ(j["unit"], "server.service");
  EXPECT_EQ(j["unit_user"], 1000);
  auto back = fault_state_from_json(fault_state_to_json(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->unit_user, 1000u);
  EXPECT_FALSE(fault_state_from_json(fault_state_to_json(record()))->unit_user);
}

TEST(FaultJson, ResolvedLineHasDuration) {
  FaultRecord r = record();
  r.kind = FaultRecord::Kind::Resolved;
  r.opened_mono_ns = r.mono_ns;
  r.mono_ns += 10'250'000'000;
  auto j = fault_to_json(r, kWall + 999'999'999);
  EXPECT_EQ(j["time"], "2026-11-26T08:00:00.999Z");
  EXPECT_EQ(j["kind"], "resolved");
  EXPECT_EQ(keys(j).back(), "duration_ms");
  EXPECT_EQ(j["duration_ms"], 10250u);
}

TEST(FaultJson, EpochAndLeapDay) {
  EXPECT_EQ(fault_to_json(record(), 0)["time"], "1970-01-01T00:00:00.000Z");
  // 2028-02-29T23:59:59.5Z
  EXPECT_EQ(fault_to_json(record(), 1835481599ull * 1'000'000'000ull + 500'000'000)["time"],
            "2028-02-29T23:59:59.500Z");
}

}  // namespace
}  // namespace fp
