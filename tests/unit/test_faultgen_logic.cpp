#include "faultgen/logic.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdint>
#include <limits>

namespace fg {
namespace {

constexpr int signaled(int sig) { return sig & 0x7f; }          // wait status of a death by `sig`
constexpr int exited(int code) { return (code & 0xff) << 8; }  // wait status of exit(code)

TEST(FaultgenLines, TruthLineIsTheAgreedJson) {
  auto j = nlohmann::json::parse(truth_line("runq_starvation", 41, {42, 43}, 123456789012345, 1795684202681761735));
  EXPECT_EQ(j["fault"], "runq_starvation");
  EXPECT_EQ(j["culprit"], 41);
  EXPECT_EQ(j["victims"], nlohmann::json::array({42, 43}));
  EXPECT_EQ(j["injected_mono_ns"].get<int64_t>(), 123456789012345);
  EXPECT_EQ(j["injected_real_ns"].get<int64_t>(), 1795684202681761735);
  EXPECT_EQ(j.size(), 5u);
}

TEST(FaultgenLines, NoVictimsIsAnEmptyArray) {
  auto j = nlohmann::json::parse(truth_line("cpu_runaway", 7, {}, 1, 2));
  ASSERT_TRUE(j["victims"].is_array());
  EXPECT_TRUE(j["victims"].empty());
}

TEST(FaultgenLines, CrashLineCarriesPidTimesAndSignal) {
  auto j = nlohmann::json::parse(crash_line(99, 5, 6, signaled(SIGSEGV)));
  EXPECT_EQ(j["crash"], 99);
  EXPECT_EQ(j["mono_ns"], 5);
  EXPECT_EQ(j["real_ns"], 6);
  EXPECT_EQ(j["signal"], SIGSEGV);
  EXPECT_FALSE(j.contains("exit_code"));
}

TEST(FaultgenLines, ExitedLineCarriesExitCode) {
  auto j = nlohmann::json::parse(exited_line(12, 5, 6, exited(3)));
  EXPECT_EQ(j["exited"], 12);
  EXPECT_EQ(j["exit_code"], 3);
  EXPECT_FALSE(j.contains("signal"));
}

TEST(FaultgenSignals, AcceptsShortLongAndLowerCaseNames) {
  EXPECT_EQ(crash_signal("SEGV"), SIGSEGV);
  EXPECT_EQ(crash_signal("SIGSEGV"), SIGSEGV);
  EXPECT_EQ(crash_signal("segv"), SIGSEGV);
  EXPECT_EQ(crash_signal("sigFpe"), SIGFPE);
  EXPECT_EQ(crash_signal("KILL"), SIGKILL);
}

TEST(FaultgenSignals, RejectsOthers) {
  EXPECT_FALSE(crash_signal(""));
  EXPECT_FALSE(crash_signal("SIG"));
  EXPECT_FALSE(crash_signal("TERM"));  // not a crash
  EXPECT_FALSE(crash_signal("11"));
  EXPECT_FALSE(crash_signal("SEGVX"));
}

TEST(FaultgenSignals, EveryCrashSignalHasItsOwnName) {
  for (const CrashSignal& s : kCrashSignals) EXPECT_EQ(signal_name(s.signo), s.name);
  EXPECT_EQ(describe_status(signaled(SIGABRT)), "killed by SIGABRT");
  EXPECT_EQ(describe_status(exited(1)), "exited with code 1");
}

TEST(FaultgenPacing, RateTimesElapsedRoundedDownToAlignment) {
  constexpr uint64_t kMiB = 1 << 20;
  EXPECT_EQ(due_bytes(40.0 * kMiB, 0, 4096, UINT64_MAX), 0u);
  EXPECT_EQ(due_bytes(40.0 * kMiB, -5, 4096, UINT64_MAX), 0u);
  EXPECT_EQ(due_bytes(40.0 * kMiB, 100'000'000, 4096, UINT64_MAX), 4 * kMiB);  // 100 ms at 40 MiB/s
  EXPECT_EQ(due_bytes(10000.0, 1'000'000'000, 4096, UINT64_MAX), 8192u);
  EXPECT_EQ(due_bytes(1e6, 1'000'000'000, 1, UINT64_MAX), 1'000'000u);
}

TEST(FaultgenPacing, NeverPastTheCap) {
  EXPECT_EQ(due_bytes(1e9, 10'000'000'000, 4096, 150u << 20), 150u << 20);
  EXPECT_EQ(due_bytes(1e9, 10'000'000'000, 4096, 10000), 8192u);  // the cap, aligned down
  EXPECT_EQ(due_bytes(1e300, std::numeric_limits<int64_t>::max(), 4096, UINT64_MAX),
            UINT64_MAX - UINT64_MAX % 4096);
}

}  // namespace
}  // namespace fg
