// faultprobe check-config FILE [--json]: parse a config the way the daemon
// would and show the rules it would run, or say exactly what is wrong.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "config/config.h"
#include "config/known_keys.h"
#include "util/duration.h"
#include "util/text.h"

namespace fp {
namespace {

std::string number_text(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

std::string match_text(const ProcessMatch& m) {
  if (m.empty()) return "all";
  std::string out;
  auto add = [&](const char* key, const std::optional<std::string>& v) {
    if (!v) return;
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    out += *v;
  };
  add("comm", m.comm);
  add("exe", m.exe);
  add("cgroup", m.cgroup);
  add("unit", m.unit);
  if (m.uid) add("uid", std::to_string(*m.uid));
  add("service", m.service);
  return out;
}

nlohmann::ordered_json match_json(const ProcessMatch& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (m.comm) j["comm"] = *m.comm;
  if (m.exe) j["exe"] = *m.exe;
  if (m.cgroup) j["cgroup"] = *m.cgroup;
  if (m.unit) j["unit"] = *m.unit;
  if (m.uid) j["uid"] = *m.uid;
  if (m.service) j["service"] = *m.service;
  return j;
}

// What a policy does, one text per class: "cpu_runaway: throttle:cpu=20% > restart".
std::vector<std::string> ladder_texts(const PolicyConfig& p) {
  std::vector<std::string> out;
  for (const auto& [cls, steps] : p.on) {
    std::string line = std::string(fault_class_name(cls)) + ":";
    for (size_t i = 0; i < steps.size(); i++) line += (i ? " > " : " ") + steps[i].text;
    out.push_back(line);
  }
  return out;
}

nlohmann::ordered_json policy_json(const PolicyConfig& p) {
  nlohmann::ordered_json j;
  j["name"] = p.name;
  j["match"] = match_json(p.match);
  // Whether a unit glob also matches users' own units (user@UID.service's
  // subtree) and restarts go through their managers.
  j["user_units"] = p.user_units;
  nlohmann::ordered_json on = nlohmann::ordered_json::object();
  for (const auto& [cls, steps] : p.on) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const auto& st : steps) a.push_back(st.text);
    on[fault_class_name(cls)] = a;
  }
  j["on"] = on;
  j["cooldown"] = format_duration(p.cooldown);
  j["recovery_window"] = format_duration(p.recovery_window);
  j["budget"] = p.budget;
  j["dry_run"] = p.dry_run;
  return j;
}

nlohmann::ordered_json config_json(const std::string& path, const Config& cfg) {
  nlohmann::ordered_json j;
  j["ok"] = true;
  j["file"] = path;
  j["sample_interval"] = format_duration(cfg.sample_interval);
  j["sample_interval_ns"] = cfg.sample_interval.count();
  j["protected_comms"] = cfg.protected_comms;
  j["rules"] = nlohmann::ordered_json::array();
  for (const RuleConfig& r : cfg.rules) {
    nlohmann::ordered_json jr;
    jr["name"] = r.name;
    jr["class"] = fault_class_name(r.cls);
    jr["enabled"] = r.enabled;
    jr["severity"] = severity_name(r.severity);
    jr["threshold"] = r.threshold;
    jr["resolve"] = r.resolve;
    // Durations both ways: readable, and exact for programs.
    jr["for"] = format_duration(r.hold);
    jr["for_ns"] = r.hold.count();
    jr["window"] = format_duration(r.window);
    jr["window_ns"] = r.window.count();
    jr["clear"] = format_duration(r.clear);
    jr["clear_ns"] = r.clear.count();
    jr["count"] = r.count;
    if (r.cls == FaultClass::MemoryLeak) {  // the leak forecast's look-ahead (0s: off)
      jr["horizon"] = format_duration(r.horizon);
      jr["horizon_ns"] = r.horizon.count();
    }
    if (r.cls == FaultClass::HostPressure) {
      using PR = PressureRule;
      const PR& p = r.pressure;
      jr["resource"] = p.resource == PR::Resource::Cpu ? "cpu" : p.resource == PR::Resource::Memory ? "memory" : "io";
      jr["kind"] = p.kind == PR::Kind::Some ? "some" : p.kind == PR::Kind::Full ? "full" : "used";
    }
    if (r.cls == FaultClass::AppErrors && !r.logwatch.path.empty()) {
      jr["path"] = r.logwatch.path;
      jr["pattern"] = r.logwatch.pattern;
    }
    jr["match"] = match_json(r.match);
    j["rules"].push_back(std::move(jr));
  }
  j["policies"] = nlohmann::ordered_json::array();
  for (const PolicyConfig& p : cfg.policies) j["policies"].push_back(policy_json(p));
  return j;
}

std::string config_table(const std::string& path, const Config& cfg) {
  size_t builtin = 0;
  for (const RuleConfig& r : cfg.rules)
    if (r.name == fault_class_name(r.cls)) ++builtin;
  std::string out = path + ": OK, " + std::to_string(cfg.rules.size()) + " rules (" + std::to_string(builtin) +
                    " built-in, " + std::to_string(cfg.rules.size() - builtin) + " added)\n";
  out += "sample interval: " + format_duration(cfg.sample_interval) + "\n";
  std::string comms;
  for (const auto& c : cfg.protected_comms) comms += (comms.empty() ? "" : ", ") + c;
  out += "protected comms: " + (comms.empty() ? std::string("(none)") : comms) + "\n\n";

  std::vector<std::vector<std::string>> rows;
  rows.push_back(
      {"NAME", "CLASS", "ENABLED", "SEVERITY", "THRESHOLD", "RESOLVE", "FOR", "WINDOW", "CLEAR", "COUNT", "MATCH"});
  for (const RuleConfig& r : cfg.rules) {
    rows.push_back({r.name, fault_class_name(r.cls), r.enabled ? "yes" : "no", severity_name(r.severity),
                    number_text(r.threshold), number_text(r.resolve), format_duration(r.hold),
                    format_duration(r.window), format_duration(r.clear), std::to_string(r.count),
                    match_text(r.match)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); i++) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); i++) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  for (const PolicyConfig& p : cfg.policies) {
    out += "\npolicy " + p.name + ": match " + match_text(p.match) +
           (p.user_units ? ", user units too (unit globs match them; restarts through their managers)"
                         : ", system units only") +
           (p.dry_run ? ", dry run" : "") + "\n";
    for (const auto& l : ladder_texts(p)) out += "  " + l + "\n";
  }
  return out;
}

// Paths come from the command line and need not be UTF-8.
std::string dump(const nlohmann::ordered_json& j) {
  return safe_dump(j);
}

}  // namespace

int run_check_config(const std::string& path, bool json) {
  auto cfg = load_config_file(path);
  if (!cfg) {
    const std::string& msg = cfg.error().message;
    std::fprintf(stderr, "faultprobe: %s\n", msg.c_str());
    if (json) {
      nlohmann::ordered_json j;
      j["ok"] = false;
      j["file"] = path;
      j["error"] = msg;
      std::printf("%s\n", dump(j).c_str());
    }
    std::fflush(stdout);
    std::fflush(stderr);
    return 2;
  }
  // A [[logwatch]] left out for a mistake: the daemon would run without it,
  // but a check says the file is not right.
  for (const std::string& why : cfg->left_out) std::fprintf(stderr, "faultprobe: %s\n", why.c_str());
  nlohmann::ordered_json cj = config_json(path, *cfg);
  if (!cfg->left_out.empty()) {
    cj["ok"] = false;
    cj["left_out"] = cfg->left_out;
  }
  std::string out = json ? dump(cj) + "\n" : config_table(path, *cfg);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  std::fflush(stderr);
  return cfg->left_out.empty() ? 0 : 2;
}

int run_list_config_keys() {
  for (const KnownKeys& section : known_config_keys())
    for (std::string_view key : section.keys)
      std::printf("%s%s%.*s\n", section.section.c_str(), section.section.empty() ? "" : ".",
                  static_cast<int>(key.size()), key.data());
  return 0;
}

}  // namespace fp
