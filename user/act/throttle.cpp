#include "act/throttle.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "act/cgroup_throttle.h"
#include "act/signal_throttle.h"

namespace fp {

uint64_t cpu_quota_us(double share) {
  if (!(share > 0)) return kMinCpuQuotaUs;
  double q = std::round(share * double(kCpuPeriodUs));
  return std::max<uint64_t>(kMinCpuQuotaUs, uint64_t(q));
}

std::unique_ptr<ThrottleBackend> choose_throttle_backend(const CgroupLayout& layout, Signaller& signaller,
                                                         Clock& clock, std::string* why,
                                                         const std::string& state_path,
                                                         const std::string& proc_root) {
  std::unique_ptr<ThrottleBackend> backend;
  std::string reason;
  const auto& v2c = layout.v2_controllers;
  bool v2_cpu = !layout.v2_root.empty() && std::find(v2c.begin(), v2c.end(), "cpu") != v2c.end();
  // A controller is in one hierarchy only: bound to v1, it is missing from
  // cgroup.controllers, so "cpu listed there" is the test for v2.
  if (v2_cpu) {
    reason = "cgroup2 at " + layout.v2_root + " has the cpu controller";
    backend = std::make_unique<CgroupV2Throttle>(layout.v2_root, v2c, CgroupThrottleEnv{proc_root, state_path, nullptr});
  } else if (layout.v1.count("cpu")) {
    reason = (layout.v2_root.empty() ? std::string("no cgroup2 mounted")
                                     : "cgroup2 at " + layout.v2_root + " has no cpu controller") +
             "; cgroup v1 cpu is mounted at " + layout.v1.at("cpu");
    backend = std::make_unique<CgroupV1Throttle>(layout.v1, CgroupThrottleEnv{proc_root, state_path, nullptr});
  } else {
    reason = "no cgroup cpu controller (v2 or v1) is available; cpu throttling by SIGSTOP/SIGCONT, "
             "memory, io and pids cannot be limited";
    backend = std::make_unique<SignalDutyCycle>(signaller, clock, 1'000'000'000ull, state_path);
  }
  spdlog::info("throttle backend: {} ({})", backend->name(), reason);
  if (why) *why = reason;
  return backend;
}

}  // namespace fp
