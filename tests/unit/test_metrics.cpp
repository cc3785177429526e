// The Prometheus exposition: parsed back line by line, and served over HTTP.
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "alert/metrics.h"

namespace fp {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped
  std::string value;
};

struct Parsed {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::vector<std::string> errors;
  const Sample* find(const std::string& name, const std::map<std::string, std::string>& labels) const {
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : labels) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) all = false;
      }
      if (all) return &s;
    }
    return nullptr;
  }
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& s : samples) n += s.name == name;
    return n;
  }
};

// A strict reader of the text format 0.0.4: HELP then TYPE before a family's
// samples, samples of a family contiguous, `name{k="v",...} value`, label
// values with only \\, \" and \n escapes, values that parse as floats.
Parsed parse(const std::string& text) {
  Parsed p;
  static const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  std::istringstream in(text);
  std::string line, family, last_help;
  std::set<std::string> finished;
  int lineno = 0;
  auto err = [&](const std::string& why) { p.errors.push_back("line " + std::to_string(lineno) + ": " + why + ": " + line); };
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      std::string n = line.substr(7, line.find(' ', 7) - 7);
      if (!family.empty()) finished.insert(family);
      if (finished.count(n)) err("family appears twice");
      last_help = n;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ls(line.substr(7));
      std::string n, t;
      ls >> n >> t;
      if (n != last_help) err("TYPE without HELP just before");
      if (t != "counter" && t != "gauge" && t != "summary") err("unexpected type");
      p.types[n] = t;
      family = n;
      continue;
    }
    if (line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, name_re)) err("bad metric name");
    bool in_family = s.name == family || (p.types[family] == "summary" && (s.name == family + "_count" ||
                                                                           s.name == family + "_sum"));
    if (!in_family) err("sample outside its family (" + family + ")");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          err("bad label");
          break;
        }
        std::string key = line.substr(i, eq - i);
        if (!std::regex_match(key, name_re)) err("bad label name");
        std::string val;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            if (j >= line.size()) break;
            if (line[j] == 'n') val += '\n';
            else if (line[j] == '\\' || line[j] == '"') val += line[j];
            else err("bad escape");
          } else {
            val += line[j];
          }
        }
        if (j >= line.size()) {
          err("unterminated label value");
          break;
        }
        if (s.labels.count(key)) err("duplicate label");
        s.labels[key] = val;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') {
      err("no value");
      continue;
    }
    s.value = line.substr(i + 1);
    if (s.value.find(' ') != std::string::npos) err("a timestamp or junk after the value");
    if (s.value != "NaN" && s.value != "+Inf" && s.value != "-Inf") {
      try {
        size_t used = 0;
        std::stod(s.value, &used);
        if (used != s.value.size()) err("value not a number");
      } catch (...) {
        err("value not a number");
      }
    }
    p.samples.push_back(std::move(s));
  }
  return p;
}

ProcessRow row(uint32_t pid, std::string comm, double cpu, uint64_t rss = 0) {
  ProcessRow r;
  r.pid = pid;
  r.comm = std::move(comm);
  r.cpu_pct = cpu;
  r.rss_bytes = rss;
  return r;
}

DaemonView sample_view() {
  DaemonView v;
  v.host.ncpus = 2;
  v.host.cpu_pct = 55;
  v.host.mem_available_bytes = 1'000'000;
  // PSI: memory with a full line, cpu with none (a kernel before 5.13), io not read
  v.host.psi[1] = {.ok = true, .some_avg10 = 12.5, .full_avg10 = 2.25, .some_total_us = 3'500'000, .full_total_us = 500'000};
  v.host.psi[0] = {.ok = true, .some_avg10 = 40, .full_avg10 = std::nullopt, .some_total_us = 9'000'000};
  v.health.drops[FP_DROP_RINGBUF_FULL] = 3;
  v.health.ticks = 1234;
  v.health.sample_hz = 9.9;
  v.health.tick_us_p50 = 150;
  v.health.tick_us_p99 = 900;
  v.health.procs_tracked = 42;
  v.health.max_procs = 8192;
  v.counters.faults_by_class["cpu_runaway"] = 2;
  v.counters.resolved_by_class["cpu_runaway"] = 1;
  v.counters.actions["throttle/ok"] = 1;
  v.counters.syslog_sent = 5;
  v.counters.syslog_suppressed = 7;
  v.counters.syslog_forward_failures = 1;
  v.open_faults.push_back({{"class", "cpu_runaway"}, {"pid", 4242}});
  v.procs.push_back(row(4242, "burn \"cpu\"\\x\ny", 98.0, 10'000'000));
  v.procs.back().state = "cpu_runaway";
  v.procs.back().net_drops_per_s = 12.5;
  v.procs.push_back(row(1, "init", 0.5, 5'000'000));
  v.procs.push_back(row(77, "idle", 0, 0));  // uses nothing: exported by no ranking
  return v;
}

TEST(Metrics, ParsesAndCarriesTheCounters) {
  std::string text = render_metrics(sample_view(), 20);
  Parsed p = parse(text);
  ASSERT_TRUE(p.errors.empty()) << p.errors.front() << "\n" << text;

  EXPECT_EQ(p.types["faultprobe_faults_total"], "counter");
  EXPECT_EQ(p.types["faultprobe_open_faults"], "gauge");
  EXPECT_EQ(p.find("faultprobe_faults_total", {{"class", "cpu_runaway"}})->value, "2");
  EXPECT_EQ(p.find("faultprobe_faults_resolved_total", {{"class", "cpu_runaway"}})->value, "1");
  EXPECT_EQ(p.find("faultprobe_open_faults", {{"class", "cpu_runaway"}})->value, "1");
  // Every class has its series before its first fault.
  for (const char* c : {"cpu_runaway", "runq_starvation", "memory_leak", "memory_pressure", "oom_kill", "io_storm",
                        "io_latency", "io_error", "crash", "crash_loop", "hang", "fork_bomb", "anomaly"}) {
    EXPECT_NE(p.find("faultprobe_faults_total", {{"class", c}}), nullptr) << c;
    EXPECT_NE(p.find("faultprobe_open_faults", {{"class", c}}), nullptr) << c;
  }
  EXPECT_EQ(p.find("faultprobe_open_faults", {{"class", "hang"}})->value, "0");
  EXPECT_EQ(p.find("faultprobe_actions_total", {{"type", "throttle"}, {"result", "ok"}})->value, "1");
  EXPECT_EQ(p.find("faultprobe_actions_total", {{"type", "kill"}, {"result", "failed"}})->value, "0");
  EXPECT_EQ(p.find("faultprobe_probe_drops_total", {{"reason", "ringbuf_full"}})->value, "3");
  EXPECT_EQ(p.find("faultprobe_samples_total", {})->value, "1234");
  EXPECT_EQ(p.find("faultprobe_sample_rate_hz", {})->value, "9.9");
  EXPECT_EQ(p.find("faultprobe_sample_cpu_seconds", {{"quantile", "0.99"}})->value, "0.0009");
  EXPECT_EQ(p.types["faultprobe_sample_cpu_seconds"], "summary");
  EXPECT_EQ(p.find("faultprobe_sample_cpu_seconds_count", {})->value, "1234");
  EXPECT_EQ(p.find("faultprobe_processes_tracked", {})->value, "42");
  EXPECT_EQ(p.find("faultprobe_processes_max", {})->value, "8192");
  EXPECT_EQ(p.find("faultprobe_syslog_lines_total", {{"result", "suppressed"}})->value, "7");
  EXPECT_EQ(p.find("faultprobe_syslog_lines_total", {{"result", "forward_failed"}})->value, "1");
  EXPECT_EQ(p.find("faultprobe_host_cpu_busy_ratio", {})->value, "0.55");
  EXPECT_EQ(p.find("faultprobe_host_memory_available_bytes", {})->value, "1000000");
  EXPECT_EQ(p.types["faultprobe_host_pressure_ratio"], "gauge");
  EXPECT_EQ(p.find("faultprobe_host_pressure_ratio", {{"resource", "memory"}, {"kind", "some"}})->value, "0.125");
  EXPECT_EQ(p.find("faultprobe_host_pressure_ratio", {{"resource", "memory"}, {"kind", "full"}})->value, "0.0225");
  EXPECT_EQ(p.find("faultprobe_host_pressure_ratio", {{"resource", "cpu"}, {"kind", "some"}})->value, "0.4");
  EXPECT_EQ(p.find("faultprobe_host_pressure_ratio", {{"resource", "cpu"}, {"kind", "full"}}), nullptr);
  EXPECT_EQ(p.find("faultprobe_host_pressure_ratio", {{"resource", "io"}, {"kind", "some"}}), nullptr);
  EXPECT_EQ(p.types["faultprobe_host_pressure_stall_seconds_total"], "counter");
  EXPECT_EQ(p.find("faultprobe_host_pressure_stall_seconds_total", {{"resource", "memory"}, {"kind", "full"}})->value,
            "0.5");
  EXPECT_EQ(p.find("faultprobe_host_pressure_stall_seconds_total", {{"resource", "cpu"}, {"kind", "some"}})->value, "9");

  // Per-process: pid and comm only (state adds state); escaping round-trips
  // to the escape_text() form (util/text.h), which has no newline left.
  const Sample* cpu = p.find("faultprobe_process_cpu_ratio", {{"pid", "4242"}});
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->labels.size(), 2u);
  EXPECT_EQ(cpu->labels.at("comm"), "burn \"cpu\"\\x\\x0ay");
  EXPECT_EQ(cpu->value, "0.98");
  EXPECT_NE(text.find(R"(comm="burn \"cpu\"\\x\\x0ay")"), std::string::npos);
  EXPECT_EQ(p.find("faultprobe_process_rss_bytes", {{"pid", "1"}})->value, "5000000");
  EXPECT_EQ(p.types["faultprobe_process_net_drops_per_second"], "gauge");
  EXPECT_EQ(p.find("faultprobe_process_net_drops_per_second", {{"pid", "4242"}})->value, "12.5");
  EXPECT_EQ(p.find("faultprobe_process_state", {{"pid", "4242"}})->labels.at("state"), "cpu_runaway");
  EXPECT_EQ(p.find("faultprobe_process_state", {{"pid", "1"}})->labels.at("state"), "ok");
  EXPECT_EQ(p.find("faultprobe_process_cpu_ratio", {{"pid", "77"}}), nullptr);
  EXPECT_EQ(p.find("faultprobe_processes_exported", {})->value, "2");
}

// One series per open fault names its culprit and severity (what an alert
// carries to Alertmanager); bounded, while faultprobe_open_faults stays exact.
TEST(Metrics, OpenFaultSeriesNameTheCulprit) {
  DaemonView v;
  v.open_faults.push_back(
      {{"class", "crash_loop"}, {"severity", "critical"}, {"rule", "crash_loop"}, {"pid", 31}, {"comm", "svc \"a\""}});
  for (uint32_t i = 0; i < 150; ++i)
    v.open_faults.push_back(
        {{"class", "hang"}, {"severity", "warning"}, {"rule", "hang"}, {"pid", 1000 + i}, {"comm", "dd"}});
  Parsed p = parse(render_metrics(v, 20));
  ASSERT_TRUE(p.errors.empty()) << p.errors.front();
  EXPECT_EQ(p.types["faultprobe_open_fault"], "gauge");
  const Sample* s = p.find("faultprobe_open_fault", {{"pid", "31"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->labels, (std::map<std::string, std::string>{
                           {"class", "crash_loop"}, {"severity", "critical"}, {"rule", "crash_loop"}, {"pid", "31"},
                           {"comm", "svc \"a\""}}));
  EXPECT_EQ(s->value, "1");
  EXPECT_EQ(p.count("faultprobe_open_fault"), 100u);
  EXPECT_EQ(p.find("faultprobe_open_faults", {{"class", "hang"}})->value, "150");

  Parsed none = parse(render_metrics(DaemonView{}, 20));
  EXPECT_EQ(none.types["faultprobe_open_fault"], "gauge");
  EXPECT_EQ(none.count("faultprobe_open_fault"), 0u);

  // Hardware faults (pid 0) are told apart by their device; label sets that
  // coincide anyway are one series with their count, never a duplicate.
  DaemonView hw;
  for (const char* dev : {"sda", "sdb", "sdb"})
    hw.open_faults.push_back({{"class", "hw_disk_error"}, {"severity", "critical"}, {"rule", "hw_disk_error"},
                              {"pid", 0}, {"comm", ""}, {"evidence", {{"device", dev}}}});
  hw.open_faults.push_back({{"class", "io_latency"}, {"severity", "warning"}, {"rule", "io_latency"}, {"pid", 5},
                            {"comm", "dd"}, {"evidence", {{"device", "8:0"}}}});
  Parsed h = parse(render_metrics(hw, 20));
  ASSERT_TRUE(h.errors.empty()) << h.errors.front();
  EXPECT_EQ(h.count("faultprobe_open_fault"), 3u);
  EXPECT_EQ(h.find("faultprobe_open_fault", {{"device", "sda"}})->value, "1");
  EXPECT_EQ(h.find("faultprobe_open_fault", {{"device", "sdb"}})->value, "2");
  EXPECT_EQ(h.find("faultprobe_open_fault", {{"pid", "5"}})->labels.count("device"), 0u);  // a process's fault

  // A kernel error carries its detector, so an alert can route kernel bugs apart.
  DaemonView ke;
  ke.open_faults.push_back({{"class", "kernel_error"}, {"severity", "critical"}, {"rule", "kernel_error"},
                            {"pid", 4242}, {"comm", "db\xffserver"}, {"evidence", {{"detector", "kfence"}}}});
  Parsed k = parse(render_metrics(ke, 20));
  ASSERT_TRUE(k.errors.empty()) << k.errors.front();
  const Sample* ks = k.find("faultprobe_open_fault", {{"class", "kernel_error"}});
  ASSERT_NE(ks, nullptr);
  EXPECT_EQ(ks->labels.at("detector"), "kfence");
  EXPECT_EQ(ks->labels.at("pid"), "4242");
  EXPECT_EQ(ks->labels.count("device"), 0u);
}

TEST(Metrics, TopNBoundsThePerProcessSeries) {
  DaemonView v;
  // 1000 processes; each resource ranks a different set on top.
  for (uint32_t i = 0; i < 1000; ++i) {
    ProcessRow r = row(1000 + i, "p" + std::to_string(i), i, (1000 - i) * 4096ull);
    r.io_write_bps = (i * 7919) % 1000;
    r.faults_per_s = (i * 104729) % 997;
    r.runq_p99_ms = (i * 31) % 101;
    if (i % 50 == 0) r.state = "memory_leak";
    v.procs.push_back(r);
  }
  const size_t n = 10;
  Parsed p = parse(render_metrics(v, n));
  ASSERT_TRUE(p.errors.empty()) << p.errors.front();
  size_t exported = p.count("faultprobe_process_cpu_ratio");
  EXPECT_GE(exported, n);
  EXPECT_LE(exported, 6 * n);  // five rankings + faulted processes
  for (const char* f : {"faultprobe_process_rss_bytes", "faultprobe_process_io_read_bytes_per_second",
                        "faultprobe_process_io_write_bytes_per_second", "faultprobe_process_runq_wait_p99_seconds",
                        "faultprobe_process_page_faults_per_second", "faultprobe_process_dirty_throttle_ratio",
                        "faultprobe_process_state"})
    EXPECT_EQ(p.count(f), exported) << f;
  // The top of each ranking is there.
  EXPECT_NE(p.find("faultprobe_process_cpu_ratio", {{"pid", "1999"}}), nullptr);  // most CPU
  EXPECT_NE(p.find("faultprobe_process_cpu_ratio", {{"pid", "1000"}}), nullptr);  // most RSS
  EXPECT_EQ(p.find("faultprobe_process_cpu_ratio", {{"pid", "1500"}}), nullptr);  // top of nothing

  Parsed none = parse(render_metrics(v, 0));
  EXPECT_EQ(none.count("faultprobe_process_cpu_ratio"), 0u);
  EXPECT_EQ(none.find("faultprobe_processes_exported", {})->value, "0");
}

TEST(Metrics, LabelEscapingAndInvalidUtf8) {
  // escape_text() first (a newline is \x0a, invalid UTF-8 \xHH: the same
  // text as the event stream's), then the format's '\\' and '"'.
  EXPECT_EQ(prom_escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\\\x0ad");
  EXPECT_EQ(prom_escape_label("größe"), "größe");
  EXPECT_EQ(prom_escape_label(std::string("x\xff", 2)), "x\\\\xff");
  EXPECT_EQ(prom_escape_label(std::string("\xc3", 1)), "\\\\xc3");  // truncated sequence
  EXPECT_EQ(prom_escape_label("\x1b[2J"), "\\\\x1b[2J");
}

TEST(Metrics, ListenAddress) {
  auto a = parse_listen_address("127.0.0.1:9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  a = parse_listen_address("[::1]:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  for (const char* bad : {"", "9464", ":9464", "host:", "host:x", "::1:9464", "h:70000", "[::1]9464"})
    EXPECT_FALSE(parse_listen_address(bad).ok()) << bad;
}

TEST(MetricsServer, ServesMetricsAnd404) {
  MetricsServer server(5);
  ASSERT_TRUE(server.start("127.0.0.1:0").ok());
  ASSERT_NE(server.port(), 0);
  httplib::Client cli("127.0.0.1", server.port());
  cli.set_read_timeout(std::chrono::seconds(5));

  auto before = cli.Get("/metrics");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 503);  // nothing published yet

  server.publish(std::make_shared<const DaemonView>(sample_view()));
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  Parsed p = parse(res->body);
  ASSERT_TRUE(p.errors.empty()) << p.errors.front();
  EXPECT_EQ(p.find("faultprobe_faults_total", {{"class", "cpu_runaway"}})->value, "2");

  // A newer view replaces the old one.
  DaemonView v2 = sample_view();
  v2.counters.faults_by_class["cpu_runaway"] = 3;
  server.publish(std::make_shared<const DaemonView>(v2));
  res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(parse(res->body).find("faultprobe_faults_total", {{"class", "cpu_runaway"}})->value, "3");

  for (const char* path : {"/", "/metrics/x", "/other"}) {
    auto r = cli.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 404) << path;
  }
  auto post = cli.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 404);
  EXPECT_GE(server.scrapes(), 3u);
  server.stop();
  EXPECT_FALSE(cli.Get("/metrics"));
}

TEST(MetricsServer, BindErrorsAreReportedAtStart) {
  MetricsServer first;
  ASSERT_TRUE(first.start("127.0.0.1:0").ok());
  MetricsServer second;
  auto r = second.start("127.0.0.1:" + std::to_string(first.port()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot listen"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().code, EADDRINUSE) << r.error().message;

  auto bad = second.start("nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("metrics_listen"), std::string::npos);
}

TEST(MetricsServer, StopRightAfterStart) {
  for (int i = 0; i < 5; ++i) {
    MetricsServer s;
    ASSERT_TRUE(s.start("127.0.0.1:0").ok());
    s.stop();
    EXPECT_FALSE(s.running());
  }
}

}  // namespace
}  // namespace fp
