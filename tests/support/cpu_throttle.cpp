#include "cpu_throttle.h"

#include <gtest/gtest.h>

#include <thread>

namespace fp::e2e {

using namespace std::chrono_literals;
using nlohmann::json;

std::string cpu_throttle_config(const std::string& cooldown) {
  return kBase + R"(
[rules.cpu_runaway]
for = "2s"
clear = "1s"

[[policy]]
name = "hogs"
match = { comm = "fg-cpu" }
on.cpu_runaway = ["throttle:cpu=20%"]
cooldown = ")" + cooldown + R"("
recovery_window = "3s"
)";
}

std::optional<json> wait_cpu_throttled(const Daemon& d, uint32_t pid, std::chrono::milliseconds fault_timeout,
                                       std::chrono::milliseconds action_timeout) {
  if (!d.wait_fault("cpu_runaway", pid, fault_timeout)) {
    ADD_FAILURE() << "no cpu_runaway fault for pid " << pid << "\n" << describe(d.records());
    return std::nullopt;
  }
  auto act = d.wait_record([&](const json& r) { return is_action(r, "throttle", "ok", pid); }, action_timeout);
  if (!act) ADD_FAILURE() << "no throttle of pid " << pid << "\n" << describe(d.records()) << d.log();
  return act;
}

double probe_cpu_share(const Daemon& d, uint32_t pid, int views) {
  double sum = 0;
  int n = 0;
  for (int i = 0; i < views; ++i) {
    std::this_thread::sleep_for(1100ms);
    auto row = d.view_row(pid);
    if (row.is_object()) {
      sum += row.value("cpu_pct", 0.0) / 100.0;
      n++;
    }
  }
  return n ? sum / n : -1;
}

void expect_probe_share_throttled(double probe_share, double kernel_share) {
  EXPECT_GT(probe_share, 0.10) << "probe says " << probe_share;
  EXPECT_LT(probe_share, 0.30) << "probe says " << probe_share;
  EXPECT_NEAR(probe_share, kernel_share, 0.08);
}

}  // namespace fp::e2e
