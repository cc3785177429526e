// The CPU-throttle scenario that the e2e tests (cgroup v1:
// Handling.ThrottleCpuHogThenUndo) and the vm tests (cgroup v2:
// VmCgroup2.CpuThrottleTakesEffectAndIsUndone) both run: faultgen's CPU hog
// under a policy that throttles it to 20 % of a core once cpu_runaway has
// held for 2 s, and undoes the throttle `cooldown` later. The tests differ
// in what they check of the backend (cpu.cfs_quota_us or cpu.max) and in
// their ground truth (/proc or the group's cpu.stat).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "e2e_fixture.h"

namespace fp::e2e {

// The daemon config: kBase, the cpu_runaway rule and the throttling policy.
std::string cpu_throttle_config(const std::string& cooldown);

// Waits for cpu_runaway to open on `pid` and then for its throttle to
// succeed: the action record, or nullopt after a test failure that says
// which of the two did not come (with the records and the daemon's log).
std::optional<nlohmann::json> wait_cpu_throttled(const Daemon& d, uint32_t pid,
                                                 std::chrono::milliseconds fault_timeout,
                                                 std::chrono::milliseconds action_timeout);

// The probe's CPU share for `pid` as the daemon's view reports it (a 1 s
// window), averaged over `views` views 1.1 s apart; -1 without a row.
double probe_cpu_share(const Daemon& d, uint32_t pid, int views);

// The probe saw the throttle: its share of the hog is about the 20 % set
// (10 to 30 %) and within 8 points of the kernel's own account of it.
void expect_probe_share_throttled(double probe_share, double kernel_share);

}  // namespace fp::e2e
