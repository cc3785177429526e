#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"  // run_check_config (cli/check_config_cmd.cpp)
#include "detect/fault.h"

namespace fp {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::nanoseconds;

Config parsed(std::string_view text, std::string_view file = "t.toml") {
  auto r = parse_config(text, file);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : Config{};
}

// The error message of a config that must be rejected.
std::string error_of(std::string_view text, std::string_view file = "t.toml") {
  auto r = parse_config(text, file);
  EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, EINVAL);
  return r.error().message;
}

const RuleConfig* find_rule(const Config& c, std::string_view name) {
  for (const auto& r : c.rules)
    if (r.name == name) return &r;
  return nullptr;
}

const RuleConfig& rule(const Config& c, std::string_view name) {
  const RuleConfig* r = find_rule(c, name);
  if (!r) {
    ADD_FAILURE() << "no rule " << name;
    static RuleConfig none;
    return none;
  }
  return *r;
}

void expect_same_rule(const RuleConfig& a, const RuleConfig& b) {
  SCOPED_TRACE(a.name);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.cls, b.cls);
  EXPECT_EQ(a.enabled, b.enabled);
  EXPECT_EQ(a.severity, b.severity);
  EXPECT_EQ(a.threshold, b.threshold);
  EXPECT_EQ(a.resolve, b.resolve);
  EXPECT_EQ(a.hold, b.hold);
  EXPECT_EQ(a.window, b.window);
  EXPECT_EQ(a.clear, b.clear);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.match.comm, b.match.comm);
  EXPECT_EQ(a.match.exe, b.match.exe);
  EXPECT_EQ(a.match.cgroup, b.match.cgroup);
  EXPECT_EQ(a.match.unit, b.match.unit);
  EXPECT_EQ(a.match.uid, b.match.uid);
}

// ---- names ----

TEST(FaultNames, EveryClassRoundTrips) {
  const char* expected[] = {"cpu_runaway", "runq_starvation", "memory_leak", "memory_pressure", "oom_kill",
                            "io_storm",    "io_latency",      "io_error",    "crash",           "crash_loop",
                            "hang",        "fork_bomb",       "anomaly",     "host_pressure",   "app_errors",
                            "net_retransmits", "net_connect_failures", "net_drops", "kernel_error", "hw_mce",
                            "hw_memory_error",
                            "hw_pcie_error", "hw_disk_error", "hw_thermal", "hw_voltage"};
  ASSERT_EQ(std::size(expected), std::size(kAllFaultClasses));
  for (size_t i = 0; i < std::size(kAllFaultClasses); i++) {
    EXPECT_STREQ(fault_class_name(kAllFaultClasses[i]), expected[i]);
    EXPECT_EQ(parse_fault_class(expected[i]), kAllFaultClasses[i]);
  }
}

TEST(FaultNames, UnknownNamesAreRejected) {
  EXPECT_EQ(parse_fault_class(""), std::nullopt);
  EXPECT_EQ(parse_fault_class("cpu"), std::nullopt);
  EXPECT_EQ(parse_fault_class("CPU_RUNAWAY"), std::nullopt);
  EXPECT_EQ(parse_fault_class("cpu_runaway "), std::nullopt);
  EXPECT_EQ(parse_severity("error"), std::nullopt);
  EXPECT_EQ(parse_severity("Warning"), std::nullopt);
  EXPECT_EQ(parse_severity(""), std::nullopt);
}

TEST(FaultNames, Severities) {
  EXPECT_STREQ(severity_name(Severity::Warning), "warning");
  EXPECT_STREQ(severity_name(Severity::Critical), "critical");
  EXPECT_EQ(parse_severity("warning"), Severity::Warning);
  EXPECT_EQ(parse_severity("critical"), Severity::Critical);
}

// ---- defaults ----

struct Expected {
  FaultClass cls;
  double threshold, resolve;
  nanoseconds window, hold, clear;
  uint32_t count;
  Severity severity;
};

// docs/rules.md, "Built-in rules". "event" thresholds are 1 (one event), a
// resolve of "–" equals the threshold, a window of "–" is 0, a count of "–" is 0.
const Expected kTable[] = {
    {FaultClass::CpuRunaway, 0.9, 0.5, 1s, 30s, 5s, 0, Severity::Warning},
    {FaultClass::RunqStarvation, 100, 50, 10s, 5s, 10s, 20, Severity::Warning},
    {FaultClass::MemoryLeak, 1.0, 0.1, 60s, 0s, 30s, 0, Severity::Warning},
    {FaultClass::MemoryPressure, 0.10, 0.02, 10s, 5s, 10s, 0, Severity::Warning},
    {FaultClass::OomKill, 1, 1, 0s, 0s, 30s, 0, Severity::Critical},
    {FaultClass::IoStorm, 50, 20, 10s, 5s, 10s, 5, Severity::Warning},
    {FaultClass::IoLatency, 200, 100, 10s, 5s, 10s, 5, Severity::Warning},
    {FaultClass::IoError, 1, 1, 10s, 0s, 30s, 0, Severity::Critical},
    {FaultClass::Crash, 1, 1, 0s, 0s, 10s, 0, Severity::Critical},
    {FaultClass::CrashLoop, 3, 3, 60s, 0s, 60s, 3, Severity::Critical},
    {FaultClass::Hang, 20, 20, 0s, 0s, 0s, 0, Severity::Warning},
    {FaultClass::ForkBomb, 100, 20, 1s, 3s, 5s, 64, Severity::Critical},
    {FaultClass::Anomaly, 8, 4, 1s, 10s, 10s, 60, Severity::Warning},
    {FaultClass::HostPressure, 20, 10, 10s, 10s, 10s, 0, Severity::Warning},
    {FaultClass::AppErrors, 50, 10, 60s, 0s, 60s, 0, Severity::Warning},
    {FaultClass::NetRetransmits, 5, 1, 10s, 10s, 10s, 20, Severity::Warning},
    {FaultClass::NetConnectFailures, 2, 0.5, 10s, 5s, 10s, 10, Severity::Warning},
    {FaultClass::NetDrops, 20, 5, 10s, 5s, 10s, 100, Severity::Warning},
    {FaultClass::KernelError, 1, 1, 0s, 0s, 600s, 0, Severity::Warning},
    {FaultClass::HwMce, 3, 3, 3600s, 0s, 600s, 3, Severity::Warning},
    {FaultClass::HwMemoryError, 10, 10, 3600s, 0s, 600s, 10, Severity::Warning},
    {FaultClass::HwPcieError, 10, 10, 600s, 0s, 300s, 10, Severity::Warning},
    {FaultClass::HwDiskError, 1, 1, 60s, 0s, 120s, 1, Severity::Critical},
    {FaultClass::HwThermal, 95, 85, 0s, 0s, 30s, 0, Severity::Warning},
    {FaultClass::HwVoltage, 0, 0, 0s, 0s, 30s, 0, Severity::Warning},
};

TEST(DefaultConfig, OneRulePerClassWithTheDocumentedValues) {
  Config c = default_config();
  EXPECT_EQ(c.source, "<built-in>");
  EXPECT_EQ(c.sample_interval, 100ms);
  EXPECT_TRUE(c.protected_comms.empty());
  ASSERT_EQ(c.rules.size(), std::size(kTable));
  for (size_t i = 0; i < std::size(kTable); i++) {
    const Expected& e = kTable[i];
    const RuleConfig& r = c.rules[i];
    SCOPED_TRACE(fault_class_name(e.cls));
    EXPECT_EQ(r.cls, e.cls);
    EXPECT_EQ(r.name, fault_class_name(e.cls));
    EXPECT_EQ(r.enabled, e.cls != FaultClass::AppErrors);  // app_errors: [[logwatch]] sections only
    EXPECT_DOUBLE_EQ(r.threshold, e.threshold);
    EXPECT_DOUBLE_EQ(r.resolve, e.resolve);
    EXPECT_LE(r.resolve, r.threshold);
    EXPECT_EQ(r.window, e.window);
    EXPECT_EQ(r.hold, e.hold);
    EXPECT_EQ(r.clear, e.clear);
    EXPECT_EQ(r.count, e.count);
    EXPECT_EQ(r.severity, e.severity);
    EXPECT_TRUE(r.match.empty());
  }
}

TEST(ParseConfig, EmptyFileIsTheDefaults) {
  for (std::string_view text : {"", "\n\n", "# only a comment\n", "[rules]\n"}) {
    SCOPED_TRACE(text);
    Config c = parsed(text, "empty.toml");
    Config d = default_config();
    EXPECT_EQ(c.source, "empty.toml");
    EXPECT_EQ(c.sample_interval, d.sample_interval);
    EXPECT_TRUE(c.protected_comms.empty());
    ASSERT_EQ(c.rules.size(), d.rules.size());
    for (size_t i = 0; i < c.rules.size(); i++) expect_same_rule(c.rules[i], d.rules[i]);
  }
}

// What a restarted daemon needs is kept where systemd does not empty it on a
// restart (RuntimeDirectory=/run/faultprobe is; StateDirectory= is not); the
// lock and the socket belong in /run.
TEST(ParseConfig, StateOutlivesARestartOfTheUnit) {
  Config d = default_config();
  EXPECT_EQ(d.daemon.state_dir, "/var/lib/faultprobe");
  EXPECT_EQ(d.daemon.lock_path.rfind("/run/faultprobe/", 0), 0u);
  EXPECT_EQ(d.daemon.socket_path.rfind("/run/faultprobe/", 0), 0u);
  EXPECT_EQ(d.daemon.throttle_backend, "auto");
  EXPECT_EQ(parsed("[daemon]\nthrottle_backend = \"signal\"\n").daemon.throttle_backend, "signal");
}

// ---- what a config can set ----

TEST(ParseConfig, TopLevelKeys) {
  Config c = parsed("sample_interval = \"250ms\"\nprotected_comms = [\"sshd\", \"systemd-journal\"]\n");
  EXPECT_EQ(c.sample_interval, 250ms);
  EXPECT_EQ(c.protected_comms, (std::vector<std::string>{"sshd", "systemd-journal"}));
  EXPECT_EQ(parsed("sample_interval = \"1ms\"").sample_interval, 1ms);   // the bounds are inclusive
  EXPECT_EQ(parsed("sample_interval = \"60s\"").sample_interval, 60s);
  EXPECT_EQ(parsed("sample_interval = \"1m\"").sample_interval, 60s);
}

// Each key of a [rules.CLASS] table changes that field of that rule, and nothing else.
TEST(ParseConfig, EachOverrideKey) {
  struct Case {
    const char* line;
    void (*apply)(RuleConfig&);  // the same change on the default rule
  };
  const Case cases[] = {
      {"enabled = false", [](RuleConfig& r) { r.enabled = false; }},
      {"severity = \"critical\"", [](RuleConfig& r) { r.severity = Severity::Critical; }},
      {"threshold = 0.95", [](RuleConfig& r) { r.threshold = 0.95; }},
      {"resolve = 0.25", [](RuleConfig& r) { r.resolve = 0.25; }},
      {"for = \"1m\"", [](RuleConfig& r) { r.hold = 60s; }},
      {"window = \"2.5s\"", [](RuleConfig& r) { r.window = 2500ms; }},
      {"clear = \"750ms\"", [](RuleConfig& r) { r.clear = 750ms; }},
      {"count = 7", [](RuleConfig& r) { r.count = 7; }},
      {"match = { comm = \"java\", uid = 0 }",
       [](RuleConfig& r) {
         r.match.comm = "java";
         r.match.uid = 0;
       }},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.line);
    Config c = parsed(std::string("[rules.cpu_runaway]\n") + k.line + "\n");
    Config d = default_config();
    k.apply(d.rules[0]);
    ASSERT_EQ(c.rules.size(), d.rules.size());
    for (size_t i = 0; i < c.rules.size(); i++) expect_same_rule(c.rules[i], d.rules[i]);
  }
}

TEST(ParseConfig, IntegersAreAcceptedWhereNumbersAreExpected) {
  Config c = parsed("[rules.cpu_runaway]\nthreshold = 1\nresolve = 0\n");
  EXPECT_EQ(rule(c, "cpu_runaway").threshold, 1.0);
  EXPECT_EQ(rule(c, "cpu_runaway").resolve, 0.0);
}

TEST(ParseConfig, MatchAsSubTableAndDottedKeys) {
  Config c = parsed(
      "[rules.io_storm.match]\n"
      "exe = \"/usr/bin/*\"\n"
      "cgroup = \"/system.slice/*\"\n"
      "unit = \"*.service\"\n"
      "[rules.hang]\n"
      "match.comm = \"dd\"\n");
  const RuleConfig& io = rule(c, "io_storm");
  EXPECT_EQ(io.match.exe, "/usr/bin/*");
  EXPECT_EQ(io.match.cgroup, "/system.slice/*");
  EXPECT_EQ(io.match.unit, "*.service");
  EXPECT_FALSE(io.match.comm);
  EXPECT_FALSE(io.match.uid);
  EXPECT_EQ(rule(c, "hang").match.comm, "dd");
  EXPECT_TRUE(rule(c, "cpu_runaway").match.empty());
}

// A class without its own resolve level ("–" in the table) resolves at its threshold,
// also when only the threshold is changed.
TEST(ParseConfig, ResolveFollowsThresholdWhereTheClassHasNone) {
  Config c = parsed("[rules.hang]\nthreshold = 10\n[rules.crash_loop]\nthreshold = 5\n");
  EXPECT_EQ(rule(c, "hang").threshold, 10);
  EXPECT_EQ(rule(c, "hang").resolve, 10);
  EXPECT_EQ(rule(c, "crash_loop").resolve, 5);
  // ...unless it is set.
  EXPECT_EQ(rule(parsed("[rules.hang]\nthreshold = 10\nresolve = 2\n"), "hang").resolve, 2);
  // A class with its own resolve keeps it when the threshold rises.
  EXPECT_EQ(rule(parsed("[rules.cpu_runaway]\nthreshold = 3\n"), "cpu_runaway").resolve, 0.5);
}

TEST(ParseConfig, AddedRuleStartsFromItsClassDefaults) {
  Config c = parsed(
      "[[rule]]\n"
      "name = \"db-latency\"\n"
      "class = \"io_latency\"\n"
      "match = { unit = \"postgresql.service\" }\n"
      "threshold = 500\n"
      "\n"
      "[[rule]]\n"
      "name = \"quiet\"\n"
      "class = \"crash\"\n"
      "enabled = false\n");
  ASSERT_EQ(c.rules.size(), std::size(kAllFaultClasses) + 2);
  const RuleConfig& db = c.rules[std::size(kAllFaultClasses)];  // added rules come after the built-ins
  EXPECT_EQ(db.name, "db-latency");
  EXPECT_EQ(db.cls, FaultClass::IoLatency);
  EXPECT_TRUE(db.enabled);
  EXPECT_EQ(db.threshold, 500);
  EXPECT_EQ(db.resolve, 100);  // the rest from io_latency's defaults
  EXPECT_EQ(db.window, 10s);
  EXPECT_EQ(db.hold, 5s);
  EXPECT_EQ(db.clear, 10s);
  EXPECT_EQ(db.count, 5u);
  EXPECT_EQ(db.severity, Severity::Warning);
  EXPECT_EQ(db.match.unit, "postgresql.service");
  const RuleConfig& quiet = c.rules.back();
  EXPECT_EQ(quiet.name, "quiet");
  EXPECT_EQ(quiet.cls, FaultClass::Crash);
  EXPECT_FALSE(quiet.enabled);
  // The built-ins are untouched.
  expect_same_rule(rule(c, "io_latency"), default_config().rules[6]);
  EXPECT_TRUE(rule(c, "crash").enabled);
}

// The example of docs/rules.md, verbatim.
TEST(ParseConfig, TheDocumentedExample) {
  Config c = parsed(R"(sample_interval = "100ms"
protected_comms = ["sshd", "systemd-journal"]

[rules.cpu_runaway]          # override a built-in
threshold = 0.95
for = "60s"

[rules.anomaly]
enabled = false

[[rule]]                     # add a rule
name = "batch-cpu"
class = "cpu_runaway"
match = { comm = "batch-*", exe = "/opt/batch/*", cgroup = "/batch/*", unit = "batch@*.service", uid = 1000 }
threshold = 0.5
for = "10s"
severity = "critical"
)",
                    "faultprobe.toml");
  EXPECT_EQ(c.source, "faultprobe.toml");
  EXPECT_EQ(c.sample_interval, 100ms);
  EXPECT_EQ(c.protected_comms, (std::vector<std::string>{"sshd", "systemd-journal"}));
  ASSERT_EQ(c.rules.size(), std::size(kAllFaultClasses) + 1);

  const RuleConfig& cpu = rule(c, "cpu_runaway");
  EXPECT_EQ(cpu.threshold, 0.95);
  EXPECT_EQ(cpu.hold, 60s);
  EXPECT_EQ(cpu.resolve, 0.5);
  EXPECT_EQ(cpu.window, 1s);
  EXPECT_TRUE(cpu.match.empty());

  EXPECT_FALSE(rule(c, "anomaly").enabled);

  const RuleConfig& batch = c.rules.back();
  EXPECT_EQ(batch.name, "batch-cpu");
  EXPECT_EQ(batch.cls, FaultClass::CpuRunaway);
  EXPECT_EQ(batch.threshold, 0.5);
  EXPECT_EQ(batch.resolve, 0.5);
  EXPECT_EQ(batch.hold, 10s);
  EXPECT_EQ(batch.severity, Severity::Critical);
  EXPECT_EQ(batch.match.comm, "batch-*");
  EXPECT_EQ(batch.match.exe, "/opt/batch/*");
  EXPECT_EQ(batch.match.cgroup, "/batch/*");
  EXPECT_EQ(batch.match.unit, "batch@*.service");
  EXPECT_EQ(batch.match.uid, 1000u);
}

// ---- errors: FILE:LINE:COLUMN and what was expected ----

TEST(ConfigErrors, TomlSyntax) {
  EXPECT_EQ(error_of("sample_interval = \"100ms\"\nthreshold =\n"),
            "t.toml:2:12: TOML syntax error in key-value pair: expected value, saw '\\n'");
  std::string dup = error_of("[rules.hang]\nthreshold = 1\nthreshold = 2\n");
  EXPECT_EQ(dup.rfind("t.toml:3:", 0), 0u) << dup;
  EXPECT_NE(dup.find("threshold"), std::string::npos) << dup;
}

TEST(ConfigErrors, UnknownKeyInOverride) {
  EXPECT_EQ(error_of("# faultprobe\n[rules.cpu_runaway]\ntreshold = 0.5\n", "x.toml"),
            "x.toml:3:1: unknown key \"treshold\" in [rules.cpu_runaway]; expected one of: enabled, severity, "
            "threshold, resolve, for, window, clear, count, horizon, resource, kind, cgroup, min_share, match");
}

TEST(ConfigErrors, UnknownKeyInAddedRuleAndMatch) {
  EXPECT_EQ(error_of("[[rule]]\nname = \"a\"\nclass = \"hang\"\n  limit = 3\n"),
            "t.toml:4:3: unknown key \"limit\" in [[rule]] \"a\"; expected one of: name, class, enabled, severity, "
            "threshold, resolve, for, window, clear, count, horizon, resource, kind, cgroup, min_share, match");
  EXPECT_EQ(error_of("[rules.crash]\nmatch = { comm = \"x\", user = \"bob\" }\n"),
            "t.toml:2:23: unknown key \"user\" in the match of [rules.crash]; expected one of: comm, exe, cgroup, "
            "unit, uid, service");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  EXPECT_EQ(error_of("sample_interval = \"1s\"\nintervall = \"1s\"\n"),
            "t.toml:2:1: unknown top-level key \"intervall\"; expected one of: sample_interval, protected_comms, "
            "rules, rule, policy, service, limits, daemon, metrics_listen, hardware, logwatch");
  // A class name at the top level is an override written without "rules.".
  EXPECT_EQ(error_of("\n[cpu_runaway]\nthreshold = 2\n"),
            "t.toml:2:2: unknown key \"cpu_runaway\"; expected one of: sample_interval, protected_comms, rules, rule, "
            "policy, service, limits, daemon, metrics_listen, hardware, logwatch; to change the built-in rule write "
            "[rules.cpu_runaway]");
}

TEST(ConfigErrors, BadDuration) {
  EXPECT_EQ(error_of("sample_interval = \"100ms\"\n"
                     "protected_comms = []\n"
                     "\n"
                     "[rules.cpu_runaway]\n"
                     "threshold = 0.95\n"
                     "\n"
                     "for       = \"10\"\n",
                     "faultprobe.toml"),
            "faultprobe.toml:7:13: \"for\" must be a duration such as \"500ms\" or \"10s\" (got \"10\")");
  EXPECT_EQ(error_of("[rules.hang]\nclear = 10\n"),
            "t.toml:2:9: \"clear\" must be a duration such as \"500ms\" or \"10s\" (got 10)");
  EXPECT_EQ(error_of("[rules.hang]\nwindow = \"-1s\"\n"),
            "t.toml:2:10: \"window\" must not be negative; expected a duration such as \"500ms\" or \"10s\" (got "
            "\"-1s\")");
  EXPECT_EQ(error_of("[rules.hang]\nfor = \"99999999h\"\n"),
            "t.toml:2:7: \"for\" is too large: the longest duration is about 292 years (got \"99999999h\")");
}

TEST(ConfigErrors, SampleIntervalBounds) {
  EXPECT_EQ(error_of("sample_interval = \"999us\"\n"),
            "t.toml:1:19: \"sample_interval\" must be between 1ms and 60s (got \"999us\")");
  EXPECT_EQ(error_of("sample_interval = \"61s\"\n"),
            "t.toml:1:19: \"sample_interval\" must be between 1ms and 60s (got \"61s\")");
  EXPECT_EQ(error_of("sample_interval = \"0s\"\n"),
            "t.toml:1:19: \"sample_interval\" must be between 1ms and 60s (got \"0s\")");
  EXPECT_EQ(error_of("sample_interval = 100\n"),
            "t.toml:1:19: \"sample_interval\" must be a duration such as \"500ms\" or \"10s\" (got 100)");
}

TEST(ConfigErrors, UnknownClass) {
  const std::string kClasses =
      "expected one of: cpu_runaway, runq_starvation, memory_leak, memory_pressure, oom_kill, io_storm, "
      "io_latency, io_error, crash, crash_loop, hang, fork_bomb, anomaly, host_pressure, app_errors, net_retransmits, "
      "net_connect_failures, net_drops, kernel_error, hw_mce, hw_memory_error, "
      "hw_pcie_error, "
      "hw_disk_error, hw_thermal, hw_voltage";
  EXPECT_EQ(error_of("[rules.cpu_runway]\nthreshold = 1\n"),
            "t.toml:1:8: unknown fault class \"cpu_runway\" in [rules.cpu_runway]; " + kClasses);
  EXPECT_EQ(error_of("[[rule]]\nname = \"x\"\nclass = \"leak\"\n"),
            "t.toml:3:9: unknown fault class \"leak\"; " + kClasses);
  EXPECT_EQ(error_of("[[rule]]\nname = \"x\"\n"), "t.toml:1:1: [[rule]] \"x\" needs a \"class\"; " + kClasses);
  EXPECT_EQ(error_of("[[rule]]\nname = \"x\"\nclass = 3\n"),
            "t.toml:3:9: \"class\" must be a fault class name (a string) (got 3); " + kClasses);
}

TEST(ConfigErrors, AddedRuleNames) {
  EXPECT_EQ(error_of("[[rule]]\nname = \"a\"\nclass = \"hang\"\n"
                     "[[rule]]\nname = \"b\"\nclass = \"hang\"\n"
                     "[[rule]]\nname = \"a\"\nclass = \"crash\"\n"),
            "t.toml:8:8: duplicate rule name \"a\" (first used at 2:8); rule names must be unique");
  EXPECT_EQ(error_of("[[rule]]\nname = \"hang\"\nclass = \"hang\"\n"),
            "t.toml:2:8: rule name \"hang\" is the name of a built-in rule; pick another name, or write "
            "[rules.hang] to change the built-in one");
  EXPECT_EQ(error_of("[[rule]]\nname = \"a\"\nclass = \"hang\"\n\n[[rule]]\nclass = \"hang\"\n"),
            "t.toml:5:1: [[rule]] #2 needs a \"name\" (a unique name for the rule)");
  EXPECT_EQ(error_of("[[rule]]\nname = \"\"\nclass = \"hang\"\n"), "t.toml:2:8: \"name\" must not be empty");
}

TEST(ConfigErrors, RuleMustBeAnArrayOfTables) {
  EXPECT_EQ(error_of("[rule]\nname = \"a\"\n"),
            "t.toml:1:1: \"rule\" must be an array of tables: write [[rule]] to add a rule (or [rules.CLASS] to "
            "change a built-in one)");
  EXPECT_EQ(error_of("rules = 1\n"),
            "t.toml:1:9: \"rules\" must be a table of built-in rule overrides such as [rules.cpu_runaway] (got 1)");
  EXPECT_EQ(error_of("[rules]\nhang = true\n"),
            "t.toml:2:8: \"rules.hang\" must be a table of rule keys such as [rules.hang] (got true)");
}

TEST(ConfigErrors, ResolveAboveThreshold) {
  EXPECT_EQ(error_of("[rules.fork_bomb]\nthreshold = 50\nresolve = 60\n"),
            "t.toml:3:11: \"resolve\" (60) must not be above \"threshold\" (50) in [rules.fork_bomb]: a fault opens "
            "above threshold and resolves below resolve");
  EXPECT_EQ(error_of("[rules.cpu_runaway]\nresolve = 1.5\n"),
            "t.toml:2:11: \"resolve\" (1.5) must not be above \"threshold\" (0.9, the built-in default) in "
            "[rules.cpu_runaway]: a fault opens above threshold and resolves below resolve");
  // Lowering only the threshold under the built-in resolve points at the threshold.
  EXPECT_EQ(error_of("[[rule]]\nname = \"x\"\nclass = \"cpu_runaway\"\nthreshold = 0.2\n"),
            "t.toml:4:13: \"threshold\" (0.2) is below \"resolve\" (0.5, the built-in default) in [[rule]] \"x\"; "
            "set \"resolve\" too, no higher than \"threshold\"");
  // Equal is fine.
  EXPECT_EQ(rule(parsed("[rules.fork_bomb]\nthreshold = 50\nresolve = 50\n"), "fork_bomb").resolve, 50);
}

TEST(ConfigErrors, NegativeNumbers) {
  EXPECT_EQ(error_of("[rules.io_storm]\nthreshold = -5\n"),
            "t.toml:2:13: \"threshold\" must not be negative (got -5)");
  EXPECT_EQ(error_of("[rules.io_storm]\nresolve = -0.5\n"),
            "t.toml:2:11: \"resolve\" must not be negative (got -0.5)");
  EXPECT_EQ(error_of("[rules.io_storm]\ncount = -1\n"),
            "t.toml:2:9: \"count\" must not be negative; expected a non-negative integer (got -1)");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of("[rules.hang]\nenabled = \"yes\"\n"),
            "t.toml:2:11: \"enabled\" must be true or false (got \"yes\")");
  EXPECT_EQ(error_of("[rules.hang]\nseverity = \"fatal\"\n"),
            "t.toml:2:12: \"severity\" must be \"warning\" or \"critical\" (got \"fatal\")");
  EXPECT_EQ(error_of("[rules.hang]\nthreshold = \"high\"\n"),
            "t.toml:2:13: \"threshold\" must be a non-negative number (got \"high\")");
  EXPECT_EQ(error_of("[rules.hang]\nthreshold = nan\n"),
            "t.toml:2:13: \"threshold\" must be a finite non-negative number (got nan)");
  EXPECT_EQ(error_of("[rules.hang]\ncount = 2.5\n"),
            "t.toml:2:9: \"count\" must be a non-negative integer (got 2.5)");
  EXPECT_EQ(error_of("[rules.hang]\ncount = 4294967296\n"),
            "t.toml:2:9: \"count\" must be at most 4294967295 (got 4294967296)");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = \"dd\"\n"),
            "t.toml:2:9: \"match\" must be a table such as { comm = \"nginx*\", uid = 1000 } (got \"dd\")");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { comm = 5 }\n"),
            "t.toml:2:18: \"comm\" must be a glob string such as \"nginx*\" (got 5)");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { exe = \"\" }\n"),
            "t.toml:2:17: \"exe\" must not be empty (leave it out to match any exe)");
  EXPECT_EQ(error_of("protected_comms = \"sshd\"\n"),
            "t.toml:1:19: \"protected_comms\" must be an array of process names such as [\"sshd\", \"postgres\"] "
            "(got \"sshd\")");
  EXPECT_EQ(error_of("protected_comms = [\"sshd\", 22]\n"),
            "t.toml:1:28: \"protected_comms\" entries must be process names (strings) (got 22)");
}

TEST(ConfigErrors, Uid) {
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { uid = \"root\" }\n"),
            "t.toml:2:17: \"uid\" must be a non-negative integer (a numeric user id) (got \"root\")");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { uid = -1 }\n"),
            "t.toml:2:17: \"uid\" must not be negative; expected a non-negative integer (a numeric user id) (got -1)");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { uid = 1.0 }\n"),
            "t.toml:2:17: \"uid\" must be a non-negative integer (a numeric user id) (got 1)");
  EXPECT_EQ(error_of("[rules.hang]\nmatch = { uid = 4294967295 }\n"),
            "t.toml:2:17: \"uid\" must be at most 4294967294 (got 4294967295)");
  EXPECT_EQ(rule(parsed("[rules.hang]\nmatch = { uid = 0 }\n"), "hang").match.uid, 0u);
}

TEST(ConfigErrors, WindowMustBePositiveWhereTheClassUsesOne) {
  EXPECT_EQ(error_of("[rules.cpu_runaway]\nwindow = \"0s\"\n"),
            "t.toml:2:10: \"window\" must be longer than 0s for class cpu_runaway (got \"0s\")");
  EXPECT_EQ(rule(parsed("[rules.hang]\nwindow = \"0s\"\n"), "hang").window, 0s);  // hang has no window
}

TEST(ConfigErrors, ProtectedCommLongerThanTheKernelKeeps) {
  EXPECT_EQ(error_of("protected_comms = [\"systemd-journald\"]\n"),
            "t.toml:1:20: \"protected_comms\" entry \"systemd-journald\" is 16 bytes long and could never match: "
            "the kernel keeps 15 bytes of a process name (write \"systemd-journal\")");
}

TEST(ConfigErrors, TheEarliestMistakeIsReported) {
  // Keys are visited in name order ("anomaly" before "zzz"), the report is in file order.
  EXPECT_EQ(error_of("zzz = 1\n[rules.anomaly]\nthreshold = \"x\"\n"),
            "t.toml:1:1: unknown top-level key \"zzz\"; expected one of: sample_interval, protected_comms, rules, "
            "rule, policy, service, limits, daemon, metrics_listen, hardware, logwatch");
  EXPECT_EQ(error_of("[rules.hang]\nwindow = 1\nclear = 2\n"),
            "t.toml:2:10: \"window\" must be a duration such as \"500ms\" or \"10s\" (got 1)");
}

TEST(ConfigErrors, NeverThrows) {
  const std::string inputs[] = {
      std::string("\xff\xfe garbage", 10), std::string("a = \"\0\"", 7), "[[[", "x = [1, 2", "= 1",
      std::string(10000, '['),
  };
  for (const std::string& in : inputs) {
    auto r = parse_config(in, "bad.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_EQ(r.error().message.rfind("bad.toml:", 0), 0u) << r.error().message;
  }
}

// ---- files and check-config ----

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fp_config_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  fs::path dir_;
};

TEST_F(ConfigFiles, LoadsAFile) {
  std::string path = write("ok.toml", "[rules.hang]\nthreshold = 30\n");
  auto c = load_config_file(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->source, path);
  EXPECT_EQ(rule(*c, "hang").threshold, 30);
}

TEST_F(ConfigFiles, ErrorsOfAFileNameIt) {
  std::string path = write("bad.toml", "\n[rules.hang]\nfor = 5\n");
  auto c = load_config_file(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, EINVAL);
  EXPECT_EQ(c.error().message, path + ":3:7: \"for\" must be a duration such as \"500ms\" or \"10s\" (got 5)");
}

TEST_F(ConfigFiles, MissingFile) {
  std::string path = (dir_ / "nope.toml").string();
  auto c = load_config_file(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ENOENT);
  EXPECT_EQ(c.error().message, "cannot read config file \"" + path + "\": No such file or directory");
}

TEST_F(ConfigFiles, DirectoryIsNotAFile) {
  auto c = load_config_file(dir_.string());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, EISDIR);
  EXPECT_NE(c.error().message.find(dir_.string()), std::string::npos);
}

TEST_F(ConfigFiles, CheckConfigJson) {
  std::string path = write("ok.toml",
                           "protected_comms = [\"sshd\"]\n[[rule]]\nname = \"db\"\nclass = \"io_latency\"\n"
                           "match = { unit = \"pg.service\", uid = 26 }\n");
  testing::internal::CaptureStdout();
  int rc = run_check_config(path, true);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["file"], path);
  EXPECT_EQ(j["sample_interval"], "100ms");
  EXPECT_EQ(j["protected_comms"], nlohmann::json::array({"sshd"}));
  ASSERT_EQ(j["rules"].size(), std::size(kAllFaultClasses) + 1);
  const auto& cpu = j["rules"][0];
  EXPECT_EQ(cpu["name"], "cpu_runaway");
  EXPECT_EQ(cpu["class"], "cpu_runaway");
  EXPECT_EQ(cpu["enabled"], true);
  EXPECT_EQ(cpu["severity"], "warning");
  EXPECT_EQ(cpu["threshold"], 0.9);
  EXPECT_EQ(cpu["resolve"], 0.5);
  EXPECT_EQ(cpu["for"], "30s");
  EXPECT_EQ(cpu["for_ns"], 30'000'000'000);
  EXPECT_EQ(cpu["window"], "1s");
  EXPECT_EQ(cpu["clear"], "5s");
  EXPECT_EQ(cpu["count"], 0);
  EXPECT_EQ(cpu["match"], nlohmann::json::object());
  const auto& db = j["rules"][std::size(kAllFaultClasses)];  // the added rule follows the built-ins
  EXPECT_EQ(db["name"], "db");
  EXPECT_EQ(db["class"], "io_latency");
  EXPECT_EQ(db["match"], (nlohmann::json{{"unit", "pg.service"}, {"uid", 26}}));
}

TEST_F(ConfigFiles, CheckConfigTable) {
  std::string path = write("ok.toml", "[[rule]]\nname = \"batch-cpu\"\nclass = \"cpu_runaway\"\n"
                                      "match = { comm = \"batch-*\" }\n");
  testing::internal::CaptureStdout();
  int rc = run_check_config(path, false);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find(path + ": OK, 26 rules (25 built-in, 1 added)"), std::string::npos) << out;
  EXPECT_NE(out.find("sample interval: 100ms"), std::string::npos) << out;
  EXPECT_NE(out.find("NAME"), std::string::npos) << out;
  EXPECT_NE(out.find("comm=batch-*"), std::string::npos) << out;
  for (FaultClass c : kAllFaultClasses) EXPECT_NE(out.find(fault_class_name(c)), std::string::npos);
}

TEST_F(ConfigFiles, CheckConfigShowsPoliciesAndWhetherTheyCoverUserUnits) {
  std::string path = write("p.toml", "[[policy]]\nname = \"mine\"\nmatch = { unit = \"foo.service\" }\n"
                                     "user_units = true\non.hang = [\"restart\", \"kill\"]\n"
                                     "[[policy]]\nname = \"sys\"\nmatch = { unit = \"foo.service\" }\n"
                                     "on.hang = [\"restart\"]\n");
  testing::internal::CaptureStdout();
  ASSERT_EQ(run_check_config(path, true), 0);
  auto j = nlohmann::json::parse(testing::internal::GetCapturedStdout(), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  ASSERT_EQ(j["policies"].size(), 2u);
  EXPECT_EQ(j["policies"][0]["name"], "mine");
  EXPECT_EQ(j["policies"][0]["match"], (nlohmann::json{{"unit", "foo.service"}}));
  EXPECT_EQ(j["policies"][0]["user_units"], true);
  EXPECT_EQ(j["policies"][0]["on"]["hang"], (nlohmann::json{"restart", "kill"}));
  EXPECT_EQ(j["policies"][1]["user_units"], false);
  testing::internal::CaptureStdout();
  ASSERT_EQ(run_check_config(path, false), 0);
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("policy mine: match unit=foo.service, user units too"), std::string::npos) << out;
  EXPECT_NE(out.find("policy sys: match unit=foo.service, system units only"), std::string::npos) << out;
  EXPECT_NE(out.find("  hang: restart > kill"), std::string::npos) << out;
}

TEST_F(ConfigFiles, CheckConfigBadFile) {
  std::string path = write("bad.toml", "[rules.hang]\nfor = \"10\"\n");
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = run_check_config(path, false);
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(out, "");
  EXPECT_EQ(err, "faultprobe: " + path +
                     ":2:7: \"for\" must be a duration such as \"500ms\" or \"10s\" (got \"10\")\n");
}

TEST_F(ConfigFiles, CheckConfigBadFileJson) {
  std::string path = write("bad.toml", "[rules.hang]\nfor = \"10\"\n");
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  int rc = run_check_config(path, true);
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find(path + ":2:7:"), std::string::npos) << err;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["file"], path);
  EXPECT_EQ(j["error"], path + ":2:7: \"for\" must be a duration such as \"500ms\" or \"10s\" (got \"10\")");
}

TEST_F(ConfigFiles, CheckConfigMissingFile) {
  std::string path = (dir_ / "missing.toml").string();
  testing::internal::CaptureStderr();
  int rc = run_check_config(path, false);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(err, "faultprobe: cannot read config file \"" + path + "\": No such file or directory\n");
}

}  // namespace
}  // namespace fp
