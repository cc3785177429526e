// The fleet path end to end: three faultprobed instances on this host, each
// with its own pin directory, socket, lock, state directory and metrics port
// on 127.0.0.1; one real Prometheus scraping the three with the shipped rules
// (packaging/prometheus/faultprobe.rules.yml); one real Alertmanager notifying
// a webhook in the test. A shell spinning in a loop is a fault of one
// instance: its alert reaches the webhook with that instance, the class, the
// pid and the comm, and a resolved notification follows once it is gone.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../time_scale.h"
#include "alerting.h"
#include "e2e_fixture.h"
#include "services.h"

namespace fp::e2e {
namespace {
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The three share one kernel, so every daemon sees every process: they stand
// for three hosts by what they watch. cpu_runaway is off on all three (other
// work on a shared machine spins too) and instance A alone has a rule for
// `sh` spinners, sensitive enough for a loaded machine (0.3 CPU for 1 s).
const std::string kQuiet = kBase + "[rules.cpu_runaway]\nenabled = false\n";
const std::string kWatchesSpinners = kQuiet + R"(
[[rule]]
name = "sh_spinner"
class = "cpu_runaway"
match = { comm = "sh" }
threshold = 0.3
resolve = 0.1
for = "1s"
clear = "1s"
severity = "critical"
)";

// The stated bound, from the spinner's start to the webhook's firing
// notification, and from its end to the resolved one: the rule's hold (1 s
// of a 1 s window), one scrape and one evaluation (1 s each), Alertmanager's
// group_wait 0 s / group_interval 1 s, with room for a loaded machine.
constexpr auto kWebhookDeadline = 20s;

struct Instance {
  std::string name;
  std::string target;  // 127.0.0.1:PORT, the alert's instance label
  std::unique_ptr<Daemon> daemon;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string diagnose(const PrivatePrometheus& prom, const PrivateAlertmanager& am, const WebhookReceiver& hook) {
  std::string out = "prometheus alerts: " + prom.get_json("/api/v1/alerts").value_or(json()).dump() +
                    "\nalertmanager alerts: " + am.alerts().value_or(json()).dump() + "\nwebhook got:";
  for (const auto& a : hook.alerts()) out += "\n  " + a.alert.dump();
  return out + "\nalertmanager log:\n" + am.log();
}

TEST(Fleet, OneInstancesFaultReachesAlertmanagerWithItsLabelsAndResolves) {
  WebhookReceiver hook;
  ASSERT_TRUE(hook.ok());
  PrivateAlertmanager am(hook.url());
  ASSERT_TRUE(am.ok()) << am.log();

  std::vector<Instance> fleet;
  for (const char* name : {"a", "b", "c"}) {
    Instance in{name, "127.0.0.1:" + std::to_string(free_port(SOCK_STREAM)), nullptr};
    in.daemon = std::make_unique<Daemon>(fleet.empty() ? kWatchesSpinners : kQuiet, std::vector<std::string>{},
                                         "metrics_listen = \"" + in.target + "\"\n");
    ASSERT_TRUE(in.daemon->ready()) << name << ":\n" << in.daemon->log();
    fleet.push_back(std::move(in));
  }
  // They do not fight: each loaded its own probe into its own pin directory
  // (none took another's over) under its own lock.
  std::set<std::string> pins;
  for (const auto& in : fleet) {
    json st = in.daemon->query({{"cmd", "status"}});
    ASSERT_TRUE(st.is_object()) << in.name << ":\n" << in.daemon->log();
    EXPECT_EQ(st["status"]["maps"].value("pin_dir", ""), in.daemon->pin_dir()) << st.dump();
    EXPECT_FALSE(st["status"].value("took_over_probe", true)) << in.name << ": " << st.dump();
    EXPECT_TRUE(std::filesystem::exists(in.daemon->pin_dir())) << in.daemon->pin_dir();
    pins.insert(in.daemon->pin_dir());
  }
  EXPECT_EQ(pins.size(), 3u);

  PrometheusSetup setup{{}, {FP_PROMETHEUS_RULES}, am.address()};
  for (const auto& in : fleet) setup.targets.push_back(in.target);
  PrivatePrometheus prom(setup);
  ASSERT_TRUE(prom.ok()) << prom.log();
  ASSERT_TRUE(prom.wait_target_up(fp::test::scaled(60s), 3)) << prom.targets().value_or(json()).dump();
  auto rules = prom.get_json("/api/v1/rules").value_or(json());
  ASSERT_NE(rules.dump().find("FaultprobeFault"), std::string::npos) << rules.dump() << prom.log();
  ASSERT_TRUE(wait_for(
      [&] { return !prom.get_json("/api/v1/alertmanagers").value_or(json())["data"]["activeAlertmanagers"].empty(); },
      30s))
      << prom.log();

  // The fault: a shell spinning in a loop, which only instance A watches.
  std::string dir = fleet[0].daemon->dir();
  auto t_start = Clock::now();
  ChildProcess spinner({"/bin/sh", "-c", "while :; do :; done"}, dir + "/spinner.log");
  const std::string pid = std::to_string(spinner.pid());
  auto spinner_alert = [&](const std::string& status) {
    return [&, status](const json& a) {
      const json& l = a["labels"];
      return a.value("status", "") == status && l.value("alertname", "") == "FaultprobeFault" &&
             l.value("class", "") == "cpu_runaway" && l.value("pid", "") == pid;
    };
  };

  auto fault = fleet[0].daemon->wait_fault("cpu_runaway", uint32_t(spinner.pid()), 30s);
  auto t_fault_line = Clock::now();
  ASSERT_TRUE(fault) << describe(fleet[0].daemon->records());
  auto firing = hook.wait_alert(spinner_alert("firing"), kWebhookDeadline);
  ASSERT_TRUE(firing) << diagnose(prom, am, hook);
  const json& labels = firing->alert["labels"];
  EXPECT_EQ(labels.value("instance", ""), fleet[0].target) << firing->alert.dump();
  EXPECT_EQ(labels.value("job", ""), "faultprobe");
  EXPECT_EQ(labels.value("comm", ""), "sh");
  EXPECT_EQ(labels.value("severity", ""), "critical");
  EXPECT_EQ(labels.value("rule", ""), "sh_spinner");
  EXPECT_NE(firing->alert["annotations"].value("summary", "").find("pid " + pid + " (sh)"), std::string::npos)
      << firing->alert.dump();
  EXPECT_LE(firing->at - t_start, fp::test::scaled(kWebhookDeadline));

  // It clears: the daemon resolves the fault, its series goes, Prometheus
  // resolves the alert and Alertmanager says so.
  auto t_stop = Clock::now();
  spinner.stop();
  ASSERT_TRUE(fleet[0].daemon->wait_resolved("cpu_runaway", uint32_t(std::stoul(pid)), 30s))
      << describe(fleet[0].daemon->records());
  auto t_resolved_line = Clock::now();
  auto resolved = hook.wait_alert(spinner_alert("resolved"), kWebhookDeadline);
  ASSERT_TRUE(resolved) << diagnose(prom, am, hook);
  EXPECT_EQ(resolved->alert["labels"].value("instance", ""), fleet[0].target);

  // Only A alerted on the spinner; the three are still running, each on its own probe.
  for (const auto& a : hook.alerts()) {
    if (a.alert["labels"].value("pid", "") == pid && a.alert["labels"].value("class", "") == "cpu_runaway") {
      EXPECT_EQ(a.alert["labels"].value("instance", ""), fleet[0].target) << a.alert.dump();
    }
  }
  for (const auto& in : fleet) {
    EXPECT_EQ(kill(in.daemon->pid(), 0), 0) << in.name << " exited:\n" << in.daemon->log();
    EXPECT_EQ(in.daemon->log().find("took over the probe pinned"), std::string::npos) << in.daemon->log();
  }

  double fire_ms = ms_between(t_start, firing->at), line_to_hook_ms = ms_between(t_fault_line, firing->at),
         resolve_ms = ms_between(t_stop, resolved->at), resolved_line_to_hook_ms = ms_between(t_resolved_line, resolved->at);
  std::printf("fleet: spinner start -> webhook firing %.0f ms (daemon's fault line -> webhook %.0f ms); "
              "spinner end -> webhook resolved %.0f ms (resolved line -> webhook %.0f ms)\n",
              fire_ms, line_to_hook_ms, resolve_ms, resolved_line_to_hook_ms);
  RecordProperty("fault_to_webhook_ms", std::to_string(int(fire_ms)));
  RecordProperty("fault_line_to_webhook_ms", std::to_string(int(line_to_hook_ms)));
  RecordProperty("clear_to_resolved_webhook_ms", std::to_string(int(resolve_ms)));
}

}  // namespace
}  // namespace fp::e2e
