// The services the end-to-end tests rely on, checked against faultprobe's own
// alert and metrics pieces (no probe, no daemon): a real rsyslogd receives the
// forwarder's RFC 5424 over UDP and TCP and parses it as such; the system
// syslog gets the local key=value lines; a real Prometheus scrapes the
// MetricsServer and answers a query. Needs root and scripts/start-services.
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "act/clock.h"
#include "alert/forwarder.h"
#include "alert/metrics.h"
#include "alert/syslog.h"
#include "services.h"

namespace fp::e2e {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSystemSyslog = "/var/log/syslog";

std::string unique_token(const char* what) {
  return std::string(what) + std::to_string(getpid()) + "t" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

FaultRecord fault_record(const std::string& comm) {
  FaultRecord r;
  r.cls = FaultClass::CpuRunaway;
  r.severity = Severity::Warning;
  r.rule = "cpu_runaway";
  r.culprit = {4242, 1};
  r.comm = comm;
  r.cgroup = "/system.slice/burn.service";
  r.evidence = {{"cores", 0.98}};
  r.mono_ns = 9'000'000'000;
  r.opened_mono_ns = 1'000'000'000;
  return r;
}

ActionRecord action_record(const std::string& comm) {
  ActionRecord a;
  a.cls = FaultClass::CpuRunaway;
  a.rule = "cpu_runaway";
  a.policy = "burners";
  a.target.key = {4242, 1};
  a.target.comm = comm;
  a.type = ActionType::Throttle;
  a.step = "throttle:cpu=20%";
  return a;
}

DaemonConfig alert_config() {
  DaemonConfig c;
  c.syslog_burst = 100;
  return c;
}

bool dev_log_ready() {
  struct stat st {};
  return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

void forward_and_receive(bool tcp) {
  PrivateRsyslog rs;
  ASSERT_TRUE(rs.ok()) << rs.log();
  MonotonicClock clock;
  std::string comm = unique_token(tcp ? "tcp " : "udp ") + "]\"";  // needs SD escaping
  SyslogSinks sinks;
  auto target = parse_forward_target(tcp ? rs.tcp_url() : rs.udp_url());
  ASSERT_TRUE(target.ok());
  sinks.push_back(std::make_unique<Rfc5424Forwarder>(target.value()));
  Alerter alerter(alert_config(), clock, std::move(sinks));

  alerter.fault_opened(fault_record(comm));
  FaultRecord resolved = fault_record(comm);
  resolved.kind = FaultRecord::Kind::Resolved;
  alerter.fault_resolved(resolved);
  alerter.action(action_record(comm));

  const char* input = tcp ? "imtcp" : "imudp";
  for (const char* msgid : {"fault", "resolved", "action"}) {
    auto rec = rs.wait_record(
        [&](const nlohmann::json& r) {
          return r.value("msgid", "") == msgid && r.value("msg", "").find(comm.substr(0, 12)) != std::string::npos;
        },
        10s);
    ASSERT_TRUE(rec) << msgid << " never arrived over " << input << "\nreceived:\n"
                     << [&] {
                          std::string all;
                          for (auto& r : rs.records()) all += r.dump() + "\n";
                          return all;
                        }() << "rsyslogd:\n"
                     << rs.log();
    // rsyslog parsed it as RFC 5424: the header fields land in their properties.
    EXPECT_EQ(rec->value("input", ""), input);
    EXPECT_EQ(rec->value("app", ""), "faultprobed");
    EXPECT_EQ(rec->value("procid", ""), std::to_string(getpid()));
    EXPECT_EQ(rec->value("facility", ""), "3");  // daemon
    std::string sd = rec->value("sd", "");
    EXPECT_EQ(sd.rfind("[faultprobe@32473 class=\"cpu_runaway\"", 0), 0u) << sd;
    EXPECT_NE(sd.find("comm=\"" + comm.substr(0, comm.size() - 2) + "\\]\\\"\""), std::string::npos) << sd;
    if (std::string(msgid) == "fault") {
      EXPECT_EQ(rec->value("severity", ""), "4");  // warning
      EXPECT_NE(sd.find(R"(evidence="{\"cores\":0.98}")"), std::string::npos) << sd;
    } else {
      EXPECT_EQ(rec->value("severity", ""), "5");  // notice
    }
    if (std::string(msgid) == "action") {
      EXPECT_NE(sd.find("action=\"throttle\""), std::string::npos) << sd;
      EXPECT_NE(sd.find("result=\"ok\""), std::string::npos) << sd;
    }
  }
  // The human file has the same lines in rsyslog's RFC 5424 output format.
  auto line = rs.wait_line(comm.substr(0, 12), 2s);
  ASSERT_TRUE(line);
  EXPECT_EQ(line->rfind("<28>1 ", 0), 0u) << *line;
  EXPECT_EQ(alerter.forward_failures(), 0u);
}

TEST(ServicesSelfCheck, RsyslogReceivesForwardedRfc5424OverUdp) { forward_and_receive(false); }

TEST(ServicesSelfCheck, RsyslogReceivesForwardedRfc5424OverTcp) { forward_and_receive(true); }

TEST(ServicesSelfCheck, LocalSyslogLinesReachVarLogSyslog) {
  ASSERT_TRUE(dev_log_ready()) << "/dev/log is missing: run scripts/start-services first";
  size_t offset = file_offset(kSystemSyslog);
  MonotonicClock clock;
  SyslogSinks sinks;
  sinks.push_back(std::make_unique<LocalSyslogSink>());
  // An unreachable collector next to it: local lines still arrive, the
  // failures are counted.
  auto target = parse_forward_target("tcp://127.0.0.1:" + std::to_string(free_port(SOCK_STREAM)));
  ASSERT_TRUE(target.ok());
  sinks.push_back(std::make_unique<Rfc5424Forwarder>(target.value()));
  Alerter alerter(alert_config(), clock, std::move(sinks));

  std::string comm = unique_token("local ");
  alerter.fault_opened(fault_record(comm));
  alerter.action(action_record(comm));
  auto open = wait_syslog_line(kSystemSyslog, {"faultprobed[", "fault class=cpu_runaway severity=warning",
                                               "comm=\"" + comm + "\"", R"(evidence={"cores":0.98})"},
                               10s, offset);
  ASSERT_TRUE(open) << "not in " << kSystemSyslog;
  auto act = wait_syslog_line(kSystemSyslog, {"faultprobed[", "action class=cpu_runaway", comm, "result=ok"}, 10s,
                              offset);
  ASSERT_TRUE(act);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (alerter.forward_failures() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(alerter.forward_failures(), 2u);
  EXPECT_EQ(alerter.sent(), 2u);
}

DaemonView fixed_view(uint64_t cpu_faults) {
  DaemonView v;
  v.hostname = "selfcheck";
  v.host.ncpus = 2;
  v.health.ticks = 100;
  v.health.max_procs = 8192;
  v.counters.faults_by_class["cpu_runaway"] = cpu_faults;
  ProcessRow p;
  p.pid = 4242;
  p.comm = "burn \"x\"\\y";
  p.cpu_pct = 97.5;
  p.rss_bytes = 1 << 20;
  p.state = "cpu_runaway";
  v.procs.push_back(p);
  v.open_faults.push_back({{"class", "cpu_runaway"}, {"pid", 4242}});
  return v;
}

TEST(ServicesSelfCheck, PrometheusScrapesTheMetricsServer) {
  MetricsServer server(20);
  ASSERT_TRUE(server.start("127.0.0.1:0").ok());
  server.publish(std::make_shared<const DaemonView>(fixed_view(3)));

  PrivatePrometheus prom("127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(prom.ok()) << prom.log();
  ASSERT_TRUE(prom.wait_target_up(30s)) << (prom.targets() ? prom.targets()->dump(2) : "no answer") << "\n"
                                        << prom.log();

  auto v = prom.wait_value(R"(faultprobe_faults_total{class="cpu_runaway"})", [](double x) { return x == 3; }, 30s);
  ASSERT_TRUE(v) << prom.query(R"(faultprobe_faults_total)").value_or(nlohmann::json()).dump(2);

  // A newer view shows in the next scrapes.
  server.publish(std::make_shared<const DaemonView>(fixed_view(4)));
  EXPECT_TRUE(prom.wait_value(R"(faultprobe_faults_total{class="cpu_runaway"})", [](double x) { return x == 4; }, 30s));
  // Series for classes that never fired exist (0), so increase() works from the first fault.
  EXPECT_TRUE(prom.wait_value(R"(faultprobe_faults_total{class="hang"})", [](double x) { return x == 0; }, 10s));

  // A comm with quotes and a backslash survives Prometheus's own parser.
  auto j = prom.query(R"(faultprobe_process_cpu_ratio{pid="4242"})");
  ASSERT_TRUE(j);
  ASSERT_FALSE((*j)["data"]["result"].empty()) << j->dump(2);
  EXPECT_EQ((*j)["data"]["result"][0]["metric"]["comm"], "burn \"x\"\\y");
  EXPECT_EQ((*j)["data"]["result"][0]["value"][1], "0.975");
  EXPECT_GE(server.scrapes(), 2u);
}

// Prometheus's own linter has no complaint about the exposition (names, HELP,
// TYPE, units, label use), for a view with every section filled.
TEST(ServicesSelfCheck, PromtoolLintsTheExposition) {
  DaemonView v = fixed_view(2);
  v.counters.actions["throttle/ok"] = 1;
  v.counters.resolved_by_class["cpu_runaway"] = 1;
  v.health.drops[0] = 5;
  for (uint32_t i = 0; i < 200; ++i) {
    ProcessRow p;
    p.pid = 10000 + i;
    p.comm = "w" + std::to_string(i);
    p.cpu_pct = i % 17;
    p.rss_bytes = i * 4096ull;
    p.io_read_bps = i % 5;
    v.procs.push_back(p);
  }
  std::string path = "/tmp/fp_promtool_" + std::to_string(getpid()) + ".txt";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string text = render_metrics(v, 20);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  std::string cmd = "/usr/bin/promtool check metrics < " + path + " 2>&1";
  std::FILE* out = popen(cmd.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string complaints;
  char buf[512];
  while (std::fgets(buf, sizeof buf, out)) complaints += buf;
  int status = pclose(out);
  unlink(path.c_str());
  EXPECT_EQ(status, 0) << complaints;
  EXPECT_EQ(complaints, "");
}

}  // namespace
}  // namespace fp::e2e
