// TOML -> Config. Every complaint names FILE:LINE:COLUMN of the offending key
// or value and says what was expected; the earliest one in the file is the
// one reported. See docs/rules.md for the schema and the defaults below.
// The policy, service, limits and daemon sections are in config_sections.cpp.
#include "config/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include <toml++/toml.h>

#include "config/parser.h"
#include "faultprobe/abi.h"
#include "util/duration.h"
#include "util/file.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

// The built-in rules, one per class: the table of docs/rules.md. Where that
// table has no value ("–" or "event"):
//  - threshold "event" (oom_kill, crash): 1, one event. These detectors open
//    at once on the event (Finding::immediate) and do not compare a level.
//  - resolve "–" (oom_kill, io_error, crash, crash_loop, hang): no hysteresis
//    band, so resolve equals threshold. has_resolve = false makes resolve
//    follow threshold when a config overrides threshold but not resolve.
//  - window "–" (oom_kill, crash, hang): 0, the class does not use a window.
//    Classes that do use one must keep it longer than 0.
//  - count "–": 0, unused.
struct Builtin {
  FaultClass cls;
  double threshold;
  double resolve;
  bool has_resolve;
  nanoseconds window;
  nanoseconds hold;  // `for`
  nanoseconds clear;
  uint32_t count;
  Severity severity;
};

constexpr Severity W = Severity::Warning;
constexpr Severity C = Severity::Critical;
// clang-format off
const Builtin kBuiltins[] = {
    // class                      thresh  resolve has   window hold  clear count sev
    {FaultClass::CpuRunaway,      0.9,    0.5,    true,  1s,   30s,  5s,   0,    W},  // cores used
    {FaultClass::RunqStarvation,  100,    50,     true,  10s,  5s,   10s,  20,   W},  // victim's wait p99 ms; min waits
    {FaultClass::MemoryLeak,      1.0,    0.1,    true,  60s,  0s,   30s,  0,    W},  // RSS growth MB/s
    {FaultClass::MemoryPressure,  0.10,   0.02,   true,  10s,  5s,   10s,  0,    W},  // reclaim share of window
    {FaultClass::OomKill,         1,      1,      false, 0s,   0s,   30s,  0,    C},  // event
    {FaultClass::IoStorm,         50,     20,     true,  10s,  5s,   10s,  5,    W},  // culprit MB/s; min victim reqs
    {FaultClass::IoLatency,       200,    100,    true,  10s,  5s,   10s,  5,    W},  // own p99 ms; min requests
    {FaultClass::IoError,         1,      1,      false, 10s,  0s,   30s,  0,    C},  // errors in window (any)
    {FaultClass::Crash,           1,      1,      false, 0s,   0s,   10s,  0,    C},  // event
    {FaultClass::CrashLoop,       3,      3,      false, 60s,  0s,   60s,  3,    C},  // crashes of one service
    {FaultClass::Hang,            20,     20,     false, 0s,   0s,   0s,   0,    W},  // ongoing D-state s
    {FaultClass::ForkBomb,        100,    20,     true,  1s,   3s,   5s,   64,   C},  // forks/s of a group; min size
    {FaultClass::Anomaly,         8,      4,      true,  1s,   10s,  10s,  60,   W},  // z-score; warm-up s
    {FaultClass::HostPressure,    20,     10,     true,  10s,  10s,  10s,  0,    W},  // memory some avg10 %
    // The defaults of a [[logwatch]] section; the built-in rule has no file to read and stays off.
    {FaultClass::AppErrors,       50,     10,     true,  60s,  0s,   60s,  0,    W},  // matching lines in window
    {FaultClass::NetRetransmits,  5,      1,      true,  10s,  10s,  10s,  20,   W},  // retransmits/s; min in window
    {FaultClass::NetConnectFailures, 2,   0.5,    true,  10s,  5s,   10s,  10,   W},  // failed connects/s; min in window
    {FaultClass::NetDrops,        20,     5,      true,  10s,  5s,   10s,  100,  W},  // dropped packets/s; min in window
    // A kernel error report (KFENCE, KASAN, WARN): a kernel bug, alerted; kept open 10 min per report site.
    {FaultClass::KernelError,     1,      1,      false, 0s,   0s,   600s, 0,    W},  // event (KFENCE/KASAN: critical)
    // Hardware: `count` corrected errors of one device in `window` open a warning; uncorrected ones are critical at once.
    {FaultClass::HwMce,           3,      3,      false, 3600s, 0s,  600s, 3,    W},  // corrected per CPU bank
    {FaultClass::HwMemoryError,   10,     10,     false, 3600s, 0s,  600s, 10,   W},  // corrected per DIMM
    {FaultClass::HwPcieError,     10,     10,     false, 600s, 0s,   300s, 10,   W},  // correctable per device
    {FaultClass::HwDiskError,     1,      1,      false, 60s,  0s,   120s, 1,    C},  // failed requests (all uncorrected)
    {FaultClass::HwThermal,       95,     85,     true,  0s,   0s,   30s,  0,    W},  // thermal zone C; hwmon limits
    {FaultClass::HwVoltage,       0,      0,      false, 0s,   0s,   30s,  0,    W},  // hwmon limits
};
// clang-format on
static_assert(std::size(kBuiltins) == std::size(kAllFaultClasses), "one built-in rule per fault class");

const Builtin& builtin(FaultClass c) {
  for (const Builtin& b : kBuiltins)
    if (b.cls == c) return b;
  return kBuiltins[0];  // unreachable: the static_assert and the test keep the table complete
}

RuleConfig rule_from(const Builtin& b) {
  RuleConfig r;
  r.name = fault_class_name(b.cls);
  r.cls = b.cls;
  r.enabled = true;
  r.severity = b.severity;
  r.threshold = b.threshold;
  r.resolve = b.resolve;
  r.hold = b.hold;
  r.window = b.window;
  r.clear = b.clear;
  r.count = b.count;
  // The leak forecast looks 10 minutes ahead: time enough to act before the OOM killer does.
  if (b.cls == FaultClass::MemoryLeak) r.horizon = 600s;
  // It has no file to read: [[logwatch]] sections are the app_errors rules.
  if (b.cls == FaultClass::AppErrors) r.enabled = false;
  // A lossy link shows in the share of what was sent: 5 % of the segments
  // retransmitted is far past what a healthy path loses (well under 1 %).
  if (b.cls == FaultClass::NetRetransmits) r.min_share = 0.05;
  return r;
}

constexpr nanoseconds kMinSampleInterval = 1ms;
constexpr nanoseconds kMaxSampleInterval = 60s;
constexpr size_t kMaxCommLen = FP_COMM_LEN - 1;     // the kernel's comm is 15 bytes + NUL
constexpr uint64_t kMaxUid = 4294967294u;           // (uid_t)-1 means "no uid"
constexpr size_t kMaxConfigBytes = 16u << 20;       // a config file, not a disk image

}  // namespace

namespace config_parse {

using namespace std::chrono_literals;

RuleConfig builtin_rule(FaultClass c) { return rule_from(builtin(c)); }

// ---- rendering values for messages ----

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return std::to_string(v);
  return std::string(buf, end);
}

// What the user wrote, as it reads in TOML ("10", 10, 2.5, true, a table).
std::string describe(const toml::node& n) {
  if (auto* s = n.as_string()) return quote(s->get());
  if (auto* i = n.as_integer()) return std::to_string(i->get());
  if (auto* f = n.as_floating_point()) return number_text(f->get());
  if (auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  if (n.is_date()) return "a date";
  if (n.is_time()) return "a time";
  if (n.is_date_time()) return "a date-time";
  return "a value of unknown type";
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (auto it : items) {
    if (!out.empty()) out += ", ";
    out.append(it);
  }
  return out;
}

std::string class_names() {
  std::vector<std::string_view> names;
  for (FaultClass c : kAllFaultClasses) names.emplace_back(fault_class_name(c));
  return join(names);
}

const std::vector<std::string_view> kTopKeys = {"sample_interval", "protected_comms", "rules",  "rule",
                                                "policy",          "service",         "limits", "daemon",
                                                "metrics_listen",  "hardware",        "logwatch"};
const std::vector<std::string_view> kRuleKeys = {"enabled", "severity", "threshold", "resolve",  "for", "window",
                                                 "clear",   "count",    "horizon",   "resource", "kind", "cgroup", "min_share",
                                                 "match"};
const std::vector<std::string_view> kAddedRuleKeys = {"name",   "class", "enabled", "severity", "threshold",
                                                      "resolve", "for",  "window",  "clear",    "count",
                                                      "horizon", "resource", "kind", "cgroup", "min_share", "match"};
const std::vector<std::string_view> kLogwatchKeys = {"name",   "path",   "journal", "unit",   "pattern", "enabled",
                                                     "severity", "threshold", "resolve", "for", "window",  "clear",
                                                     "match"};
const std::vector<std::string_view> kMatchKeys = {"comm", "exe", "cgroup", "unit", "uid", "service"};

// Where a rule's cross-checked values came from (nullptr: the built-in default).
struct RuleSources {
  const toml::node* threshold = nullptr;
  const toml::node* resolve = nullptr;
  const toml::node* window = nullptr;
};


Config Parser::run(const toml::table& root) {
  Config cfg = default_config();
  cfg.source = file_;
  const toml::node* top_metrics = nullptr;     // metrics_listen = "..." (the issue's spelling)
  const toml::node* daemon_metrics = nullptr;  // [daemon] metrics_listen = "..."
  for (auto&& [key, node] : root) {
    const std::string_view k = key.str();
    if (k == "sample_interval") {
      sample_interval(node, cfg);
    } else if (k == "protected_comms") {
      protected_comms(node, cfg);
    } else if (k == "rules") {
      overrides(node, cfg);
    } else if (k == "rule") {
      added_rules(node, cfg);
    } else if (k == "policy") {
      policies(node, cfg);
    } else if (k == "service") {
      services(node, cfg);
    } else if (k == "limits") {
      limits(node, cfg);
    } else if (k == "daemon") {
      daemon(node, cfg, daemon_metrics);
    } else if (k == "hardware") {
      hardware(node, cfg);
    } else if (k == "logwatch") {
      logwatches(node, cfg);
    } else if (k == "metrics_listen") {
      top_metrics = &node;
      metrics_listen(node, cfg);
    } else if (parse_fault_class(k)) {
      unknown_key(key, "", kTopKeys, "to change the built-in rule write [rules." + std::string(k) + "]");
    } else {
      std::string msg = "unknown top-level key " + quote(k) + "; expected one of: " + join(kTopKeys);
      error(key, msg);
    }
  }
  logwatch_names(cfg);
  if (top_metrics && daemon_metrics) {
    // One setting, two spellings: say where the other one is rather than pick one.
    const bool top_first = std::pair(top_metrics->source().begin.line, top_metrics->source().begin.column) <
                           std::pair(daemon_metrics->source().begin.line, daemon_metrics->source().begin.column);
    const toml::node& later = top_first ? *daemon_metrics : *top_metrics;
    const toml::node& earlier = top_first ? *top_metrics : *daemon_metrics;
    error(later, "\"metrics_listen\" is set twice: at the top level and in [daemon] (first at " +
                     std::to_string(earlier.source().begin.line) + ":" +
                     std::to_string(earlier.source().begin.column) + "); keep one");
  }
  return cfg;
}

void Parser::sample_interval(const toml::node& n, Config& cfg) {
  auto d = duration(n, "sample_interval");
  if (!d) return;
  if (*d < kMinSampleInterval || *d > kMaxSampleInterval) {
    error(n, "\"sample_interval\" must be between 1ms and 60s (got " + describe(n) + ")");
    return;
  }
  cfg.sample_interval = *d;
}

void Parser::protected_comms(const toml::node& n, Config& cfg) {
  const toml::array* arr = n.as_array();
  if (!arr) {
    error(n, "\"protected_comms\" must be an array of process names such as [\"sshd\", \"postgres\"] (got " +
                 describe(n) + ")");
    return;
  }
  for (const toml::node& e : *arr) {
    const auto* s = e.as_string();
    if (!s) {
      error(e, "\"protected_comms\" entries must be process names (strings) (got " + describe(e) + ")");
      continue;
    }
    const std::string& comm = s->get();
    if (comm.empty()) {
      error(e, "\"protected_comms\" entries must not be empty");
    } else if (comm.front() != '/' && comm.size() > kMaxCommLen) {  // "/usr/sbin/x": an executable's path
      error(e, "\"protected_comms\" entry " + quote(comm) + " is " + std::to_string(comm.size()) +
                   " bytes long and could never match: the kernel keeps " + std::to_string(kMaxCommLen) +
                   " bytes of a process name (write " + quote(comm.substr(0, kMaxCommLen)) + ")");
    } else {
      cfg.protected_comms.push_back(comm);
    }
  }
}

void Parser::overrides(const toml::node& n, Config& cfg) {
  const toml::table* rules = n.as_table();
  if (!rules) {
    error(n, "\"rules\" must be a table of built-in rule overrides such as [rules.cpu_runaway] (got " +
                 describe(n) + ")");
    return;
  }
  for (auto&& [key, node] : *rules) {
    const std::string name(key.str());
    auto cls = parse_fault_class(name);
    if (!cls) {
      error(key, "unknown fault class " + quote(name) + " in [rules." + name + "]; expected one of: " +
                     class_names());
      continue;
    }
    const std::string where = "[rules." + name + "]";
    if (*cls == FaultClass::AppErrors) {
      error(key, "app_errors rules are written as [[logwatch]] sections, each with its \"path\" and \"pattern\" "
                 "(there is no built-in one to change)");
      continue;
    }
    const toml::table* t = node.as_table();
    if (!t) {
      error(node, "\"rules." + name + "\" must be a table of rule keys such as " + where + " (got " +
                      describe(node) + ")");
      continue;
    }
    for (RuleConfig& r : cfg.rules)
      if (r.cls == *cls && r.name == name) apply_rule(*t, r, where, false);
  }
}

void Parser::added_rules(const toml::node& n, Config& cfg) {
  const toml::array* arr = n.as_array();
  if (!arr) {
    if (n.is_table())
      error(n, "\"rule\" must be an array of tables: write [[rule]] to add a rule (or [rules.CLASS] to change "
               "a built-in one)");
    else
      error(n, "\"rule\" must be an array of tables, one [[rule]] per added rule (got " + describe(n) + ")");
    return;
  }
  std::map<std::string, const toml::node*> seen;  // added rule names -> their "name" value
  size_t index = 0;
  for (const toml::node& e : *arr) {
    ++index;
    if (const toml::table* t = e.as_table())
      added_rule(*t, index, seen, cfg);
    else
      error(e, "each [[rule]] must be a table of rule keys (got " + describe(e) + ")");
  }
}

void Parser::added_rule(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen,
                        Config& cfg) {
  std::string where = "[[rule]] #" + std::to_string(index);
  const size_t errors_before = errors_.size();

  std::string name;
  if (const toml::node* n = t.get("name")) {
    if (const auto* s = n->as_string(); !s) {
      error(*n, "\"name\" must be a string (got " + describe(*n) + ")");
    } else if (s->get().empty()) {
      error(*n, "\"name\" must not be empty");
    } else if (parse_fault_class(s->get())) {
      error(*n, "rule name " + quote(s->get()) +
                    " is the name of a built-in rule; pick another name, or write [rules." + s->get() +
                    "] to change the built-in one");
    } else if (auto it = seen.find(s->get()); it != seen.end()) {
      const auto& first = it->second->source().begin;
      error(*n, "duplicate rule name " + quote(s->get()) + " (first used at " + std::to_string(first.line) + ":" +
                    std::to_string(first.column) + "); rule names must be unique");
    } else {
      name = s->get();
      seen.emplace(name, n);
      where = "[[rule]] " + quote(name);
    }
  } else {
    error(t, where + " needs a \"name\" (a unique name for the rule)");
  }

  std::optional<FaultClass> cls;
  if (const toml::node* n = t.get("class")) {
    if (const auto* s = n->as_string(); !s)
      error(*n, "\"class\" must be a fault class name (a string) (got " + describe(*n) + "); expected one of: " +
                    class_names());
    else if (!(cls = parse_fault_class(s->get())))
      error(*n, "unknown fault class " + quote(s->get()) + "; expected one of: " + class_names());
    else if (*cls == FaultClass::AppErrors)
      error(*n, "app_errors rules are written as [[logwatch]] sections, each with its \"path\" and \"pattern\"");
  } else {
    error(t, where + " needs a \"class\"; expected one of: " + class_names());
  }

  // An added rule starts from its class's built-in values. With no valid
  // class the keys are still checked, so every mistake gets reported.
  if (cls == FaultClass::AppErrors) cls.reset();  // said above; its keys are checked as any rule's
  RuleConfig r = rule_from(builtin(cls.value_or(FaultClass::Anomaly)));
  r.name = name;
  apply_rule(t, r, where, true);
  if (errors_.size() == errors_before) cfg.rules.push_back(std::move(r));
}

// Overlays the keys of one rule table on r, then checks the result as a whole.
void Parser::apply_rule(const toml::table& t, RuleConfig& r, const std::string& where, bool added) {
  const size_t errors_before = errors_.size();
  RuleSources src;
  for (auto&& [key, node] : t) {
    const std::string_view k = key.str();
    if (k == "enabled") {
      if (const auto* b = node.as_boolean())
        r.enabled = b->get();
      else
        error(node, "\"enabled\" must be true or false (got " + describe(node) + ")");
    } else if (k == "severity") {
      const auto* s = node.as_string();
      std::optional<Severity> sev = s ? parse_severity(s->get()) : std::nullopt;
      if (sev)
        r.severity = *sev;
      else
        error(node, "\"severity\" must be \"warning\" or \"critical\" (got " + describe(node) + ")");
    } else if (k == "threshold") {
      if (auto v = number(node, k)) {
        r.threshold = *v;
        src.threshold = &node;
      }
    } else if (k == "resolve") {
      if (auto v = number(node, k)) {
        r.resolve = *v;
        src.resolve = &node;
      }
    } else if (k == "for") {
      if (auto d = duration(node, k)) r.hold = *d;
    } else if (k == "window") {
      if (auto d = duration(node, k)) {
        r.window = *d;
        src.window = &node;
      }
    } else if (k == "clear") {
      if (auto d = duration(node, k)) r.clear = *d;
    } else if (k == "count") {
      if (auto v = integer(node, k, std::numeric_limits<uint32_t>::max(), "a non-negative integer"))
        r.count = static_cast<uint32_t>(*v);
    } else if (k == "horizon") {
      if (r.cls != FaultClass::MemoryLeak)
        error(node, "\"horizon\" is a memory_leak rule's (the forecast's) and means nothing in " + where);
      else if (auto d = duration(node, k))
        r.horizon = *d;
    } else if (k == "min_share") {
      if (r.cls != FaultClass::NetRetransmits) {
        error(node, "\"min_share\" is a net_retransmits rule's (the share of segments retransmitted) and means "
                    "nothing in " + where);
      } else if (auto v = number(node, k)) {
        if (*v > 1)
          error(node, "\"min_share\" must be a share between 0 and 1 (0.05 = 5 % of the segments sent) (got " +
                          describe(node) + ")");
        else
          r.min_share = *v;
      }
    } else if (k == "resource" || k == "kind" || k == "cgroup") {
      pressure_key(node, k, r, where);
    } else if (k == "match") {
      apply_match(node, r.match, where);
    } else if (added && r.cls != FaultClass::AppErrors && (k == "name" || k == "class")) {
      // read by added_rule()
    } else if (r.cls == FaultClass::AppErrors &&
               (k == "name" || k == "path" || k == "pattern" || k == "journal" || k == "unit")) {
      // read by logwatch()
    } else {
      unknown_key(key, where, r.cls == FaultClass::AppErrors ? kLogwatchKeys : added ? kAddedRuleKeys : kRuleKeys);
    }
  }
  if (errors_.size() != errors_before) return;  // cross-checks would only repeat the mistake
  if (!r.pressure.cgroup.empty() && r.pressure.kind == PressureRule::Kind::Used) {
    error(t, "\"cgroup\" watches a group's PSI (kind \"some\" or \"full\"); utilisation (kind \"used\") is the "
             "host's only, in " + where);
    return;
  }

  const Builtin& b = builtin(r.cls);
  if (!b.has_resolve && !src.resolve) r.resolve = r.threshold;
  if (r.resolve > r.threshold) {
    if (src.resolve) {
      error(*src.resolve, "\"resolve\" (" + number_text(r.resolve) + ") must not be above \"threshold\" (" +
                              number_text(r.threshold) + (src.threshold ? "" : ", the built-in default") +
                              ") in " + where + ": a fault opens above threshold and resolves below resolve");
    } else {
      const toml::source_region at = src.threshold ? src.threshold->source() : t.source();
      error(at, "\"threshold\" (" + number_text(r.threshold) + ") is below \"resolve\" (" + number_text(r.resolve) +
                    ", the built-in default) in " + where + "; set \"resolve\" too, no higher than \"threshold\"");
    }
  }
  if (b.window > 0ns && r.window <= 0ns && src.window) {
    error(*src.window, "\"window\" must be longer than 0s for class " + std::string(fault_class_name(r.cls)) +
                           " (got " + describe(*src.window) + ")");
  }
}

// host_pressure's resource = "cpu" | "memory" | "io", kind = "some" | "full" | "used".
void Parser::pressure_key(const toml::node& n, std::string_view k, RuleConfig& r, const std::string& where) {
  using PR = PressureRule;
  if (r.cls != FaultClass::HostPressure) {
    error(n, quote(k) + " is a host_pressure rule's and means nothing in " + where);
    return;
  }
  const auto* s = n.as_string();
  const std::string v = s ? s->get() : "";
  if (k == "cgroup") {
    // A path inside the cgroup v2 tree, joined to its mount: absolute, no
    // "." or ".." step, no empty step, nothing unprintable.
    bool ok = s != nullptr && !v.empty() && v[0] == '/' && v.size() < 4096;
    for (unsigned char c : v) ok = ok && c >= 0x20 && c != 0x7f;
    for (size_t i = 1; ok && i <= v.size(); ++i) {
      const size_t end = v.find('/', i);
      const std::string step = v.substr(i, end == std::string::npos ? std::string::npos : end - i);
      if (v == "/") break;
      ok = !step.empty() && step != "." && step != "..";
      if (end == std::string::npos) break;
      i = end;
    }
    if (ok)
      r.pressure.cgroup = v;
    else
      error(n, "\"cgroup\" must be a cgroup v2 path such as \"/system.slice/db.service\" (absolute, no \".\" or "
               "\"..\" steps) (got " + describe(n) + ")");
    return;
  }
  if (k == "resource") {
    if (v == "cpu")
      r.pressure.resource = PR::Resource::Cpu;
    else if (v == "memory")
      r.pressure.resource = PR::Resource::Memory;
    else if (v == "io")
      r.pressure.resource = PR::Resource::Io;
    else
      error(n, "\"resource\" must be \"cpu\", \"memory\" or \"io\" (got " + describe(n) + ")");
  } else if (v == "some") {
    r.pressure.kind = PR::Kind::Some;
  } else if (v == "full") {
    r.pressure.kind = PR::Kind::Full;
  } else if (v == "used") {
    r.pressure.kind = PR::Kind::Used;
  } else {
    error(n, "\"kind\" must be \"some\" or \"full\" (PSI stall %, avg10) or \"used\" (utilisation: cpu %, "
             "memory %, io MB/s) (got " + describe(n) + ")");
  }
}

void Parser::apply_match(const toml::node& n, ProcessMatch& m, const std::string& where) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"match\" must be a table such as { comm = \"nginx*\", uid = 1000 } (got " + describe(n) + ")");
    return;
  }
  ProcessMatch out;
  for (auto&& [key, node] : *t) {
    const std::string_view k = key.str();
    if (k == "comm") {
      out.comm = glob(node, k);
    } else if (k == "exe") {
      out.exe = glob(node, k);
    } else if (k == "cgroup") {
      out.cgroup = glob(node, k);
    } else if (k == "unit") {
      out.unit = glob(node, k);
    } else if (k == "uid") {
      if (auto v = integer(node, k, kMaxUid, "a non-negative integer (a numeric user id)"))
        out.uid = static_cast<uint32_t>(*v);
    } else if (k == "service") {
      // Which [[service]] runs a process is known to the handler, not to the detectors.
      if (where.rfind("[[policy]]", 0) != 0)
        error(node, "\"service\" can only select the processes of a [[policy]], not of a rule (in " + where + ")");
      else
        out.service = glob(node, k);
    } else {
      unknown_key(key, "the match of " + where, kMatchKeys);
    }
  }
  m = std::move(out);  // a match replaces the one it overrides as a whole
}

std::optional<double> Parser::number(const toml::node& n, std::string_view key) {
  double v;
  if (const auto* i = n.as_integer()) {
    v = static_cast<double>(i->get());  // threshold = 1 means 1.0
  } else if (const auto* f = n.as_floating_point()) {
    v = f->get();
  } else {
    error(n, quote(key) + " must be a non-negative number (got " + describe(n) + ")");
    return std::nullopt;
  }
  if (!std::isfinite(v)) {
    error(n, quote(key) + " must be a finite non-negative number (got " + describe(n) + ")");
    return std::nullopt;
  }
  if (v < 0) {
    error(n, quote(key) + " must not be negative (got " + describe(n) + ")");
    return std::nullopt;
  }
  return v;
}

std::optional<nanoseconds> Parser::duration(const toml::node& n, std::string_view key) {
  const std::string expected = " a duration such as \"500ms\" or \"10s\" (got " + describe(n) + ")";
  const auto* s = n.as_string();
  if (!s) {
    error(n, quote(key) + " must be" + expected);
    return std::nullopt;
  }
  auto d = parse_duration(s->get());
  if (d) return d.value();
  const std::string& text = s->get();
  const size_t first = text.find_first_not_of(" \t");
  if (first != std::string::npos && text[first] == '-')
    error(n, quote(key) + " must not be negative; expected" + expected);
  else if (d.error().message.find("too large") != std::string::npos)
    error(n, quote(key) + " is too large: the longest duration is about 292 years (got " + describe(n) + ")");
  else
    error(n, quote(key) + " must be" + expected);
  return std::nullopt;
}

std::optional<uint64_t> Parser::integer(const toml::node& n, std::string_view key, uint64_t max,
                                        std::string_view what) {
  const auto* i = n.as_integer();
  if (!i) {
    error(n, quote(key) + " must be " + std::string(what) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  const int64_t v = i->get();
  if (v < 0) {
    error(n, quote(key) + " must not be negative; expected " + std::string(what) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  if (static_cast<uint64_t>(v) > max) {
    error(n, quote(key) + " must be at most " + std::to_string(max) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  return static_cast<uint64_t>(v);
}

std::optional<std::string> Parser::glob(const toml::node& n, std::string_view key) {
  const auto* s = n.as_string();
  if (!s) {
    error(n, quote(key) + " must be a glob string such as \"nginx*\" (got " + describe(n) + ")");
    return std::nullopt;
  }
  if (s->get().empty()) {
    error(n, quote(key) + " must not be empty (leave it out to match any " + std::string(key) + ")");
    return std::nullopt;
  }
  return s->get();
}

// toml++ says "Error while parsing key-value pair: expected value, saw '\n'".
std::string syntax_error(std::string_view file, const toml::parse_error& e) {
  std::string desc(e.description());
  constexpr std::string_view kPrefix = "Error while parsing ";
  std::string msg = desc.rfind(kPrefix, 0) == 0 ? "TOML syntax error in " + desc.substr(kPrefix.size())
                                                 : "TOML syntax error: " + desc;
  const auto& b = e.source().begin;
  std::string text(file.empty() ? "<config>" : file);
  if (b.line > 0) text += ":" + std::to_string(b.line) + ":" + std::to_string(b.column);
  return text + ": " + msg;
}

}  // namespace config_parse

using config_parse::Parser;
using config_parse::quote;
using config_parse::syntax_error;

Config default_config() {
  Config cfg;
  cfg.sample_interval = 100ms;
  for (FaultClass c : kAllFaultClasses) cfg.rules.push_back(rule_from(builtin(c)));
  cfg.source = "<built-in>";
  return cfg;
}

Result<Config> parse_config(std::string_view toml_text, std::string_view filename) {
  try {
    toml::table root = toml::parse(toml_text, std::string(filename));
    Parser parser(filename);
    Config cfg = parser.run(root);
    if (parser.failed()) return parser.first_error();
    cfg.source = std::string(filename);
    return cfg;
  } catch (const toml::parse_error& e) {
    return Error{EINVAL, syntax_error(filename, e)};
  } catch (const std::exception& e) {
    return Error{EINVAL, std::string(filename) + ": cannot parse the config: " + e.what()};
  } catch (...) {
    return Error{EINVAL, std::string(filename) + ": cannot parse the config"};
  }
}

Result<Config> load_config_file(const std::string& path) {
  const std::string what = "cannot read config file " + quote(path);
  auto text = read_file(path, kMaxConfigBytes + 1);
  if (!text) return Error::from_errno(text.error().code, what);
  if (text->size() > kMaxConfigBytes)
    return Error{EFBIG, what + ": larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB"};
  return parse_config(*text, path);
}

std::vector<KnownKeys> known_config_keys() {
  using namespace config_parse;
  std::vector<KnownKeys> out = {{"", kTopKeys}, {"rules.CLASS", kRuleKeys}, {"rule", kAddedRuleKeys},
                                {"logwatch", kLogwatchKeys}, {"match", kMatchKeys}};
  for (auto& s : section_keys()) out.push_back(std::move(s));
  return out;
}

}  // namespace fp
