// The action sections of the config: [[policy]], [[service]], [limits],
// [daemon] (and the top-level metrics_listen). Same rules as the rest of the
// parser: every complaint names FILE:LINE:COLUMN and says what is expected.
#include <algorithm>
#include <string>

#include "config/parser.h"
#include "util/duration.h"

namespace fp::config_parse {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string_view> kPolicyKeys = {"name",   "match",   "on",        "cooldown", "recovery_window",
                                                   "budget", "dry_run", "user_units"};
const std::vector<std::string_view> kServiceKeys = {"name",          "command",         "user",
                                                    "cwd",           "env",             "restart",
                                                    "stop_grace",    "backoff_initial", "backoff_max",
                                                    "crash_loop_limit", "crash_loop_window", "checkpoint"};
const std::vector<std::string_view> kCheckpointKeys = {"backend", "dir", "every", "keep"};
const std::vector<std::string_view> kLimitsKeys = {"actions_per_minute"};
const std::vector<std::string_view> kDaemonKeys = {"syslog",       "syslog_forward", "syslog_burst",
                                                   "syslog_per",   "socket",         "socket_group",
                                                   "metrics_listen", "metrics_top_n", "pin_dir",
                                                   "lock_path",    "state_dir",      "log_dir",
                                                   "max_procs",    "throttle_backend"};

constexpr uint64_t kMaxBudget = 1'000'000;          // actions per process per hour
constexpr uint64_t kMaxActionsPerMinute = 1'000'000;
constexpr uint64_t kMaxCount = 1'000'000;           // counters of the daemon section and services

bool service_name_ok(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

}  // namespace

// ---- the action sections: [[policy]], [[service]], [limits], [daemon] ----

const toml::array* Parser::table_array(const toml::node& n, std::string_view key, std::string_view what) {
  if (const toml::array* arr = n.as_array()) return arr;
  const std::string k(key);
  if (n.is_table())
    error(n, quote(k) + " must be an array of tables: write [[" + k + "]], one per " + std::string(what));
  else
    error(n, quote(k) + " must be an array of tables, one [[" + k + "]] per " + std::string(what) + " (got " +
                 describe(n) + ")");
  return nullptr;
}

// The "name" of a [[policy]] or [[service]]: required, unique among its kind.
// On success `where` becomes `[[kind]] "name"` for the messages that follow.
std::string Parser::unique_name(const toml::table& t, std::string& where,
                                std::map<std::string, const toml::node*>& seen, std::string_view kind,
                                bool service) {
  const toml::node* n = t.get("name");
  if (!n) {
    error(t, where + " needs a \"name\" (a unique name for the " + std::string(kind) + ")");
    return {};
  }
  const auto* s = n->as_string();
  if (!s) {
    error(*n, "\"name\" must be a string (got " + describe(*n) + ")");
  } else if (s->get().empty()) {
    error(*n, "\"name\" must not be empty");
  } else if (service && !service_name_ok(s->get())) {
    error(*n, "service name " + quote(s->get()) + " may only contain letters, digits, \"_\", \".\" and \"-\"");
  } else if (auto it = seen.find(s->get()); it != seen.end()) {
    const auto& first = it->second->source().begin;
    error(*n, "duplicate " + std::string(kind) + " name " + quote(s->get()) + " (first used at " +
                  std::to_string(first.line) + ":" + std::to_string(first.column) + "); " + std::string(kind) +
                  " names must be unique");
  } else {
    seen.emplace(s->get(), n);
    where = "[[" + std::string(kind) + "]] " + quote(s->get());
    return s->get();
  }
  return {};
}

void Parser::policies(const toml::node& n, Config& cfg) {
  const toml::array* arr = table_array(n, "policy", "policy");
  if (!arr) return;
  std::map<std::string, const toml::node*> seen;
  size_t index = 0;
  for (const toml::node& e : *arr) {
    ++index;
    if (const toml::table* t = e.as_table())
      policy(*t, index, seen, cfg);
    else
      error(e, "each [[policy]] must be a table of policy keys (got " + describe(e) + ")");
  }
}

void Parser::policy(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen,
                    Config& cfg) {
  std::string where = "[[policy]] #" + std::to_string(index);
  const size_t errors_before = errors_.size();
  PolicyConfig p;
  p.name = unique_name(t, where, seen, "policy", false);

  if (const toml::node* m = t.get("match")) {
    const size_t before_match = errors_.size();
    apply_match(*m, p.match, where);
    if (errors_.size() == before_match && p.match.empty())
      error(*m, "\"match\" of " + where + " must name at least one of comm, exe, cgroup, unit, uid, service: an empty "
                "match would let the policy act on every process");
  } else {
    error(t, where + " needs a \"match\" such as { comm = \"batch-worker\" } (keys: comm, exe, cgroup, unit, uid, service)");
  }

  for (auto&& [key, node] : t) {
    const std::string_view k = key.str();
    if (k == "name" || k == "match") {
      // read above
    } else if (k == "on") {
      ladders(node, p, where);
    } else if (k == "cooldown") {
      if (auto d = duration(node, k)) p.cooldown = *d;
    } else if (k == "recovery_window") {
      if (auto d = positive_duration(node, k)) p.recovery_window = *d;
    } else if (k == "budget") {
      if (auto v = count(node, k, 1, kMaxBudget, "the number of actions allowed on one process per hour"))
        p.budget = static_cast<uint32_t>(*v);
    } else if (k == "dry_run") {
      if (auto b = boolean(node, k)) p.dry_run = *b;
    } else if (k == "user_units") {
      if (auto b = boolean(node, k)) p.user_units = *b;
    } else {
      unknown_key(key, where, kPolicyKeys);
    }
  }
  if (errors_.size() == errors_before) cfg.policies.push_back(std::move(p));
}

// on.<class> = ["throttle:cpu=20%", "restart"]: one ladder per fault class.
void Parser::ladders(const toml::node& n, PolicyConfig& p, const std::string& where) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"on\" must be a table of ladders such as on.cpu_runaway = [\"throttle:cpu=20%\", \"restart\"] (got " +
                 describe(n) + ")");
    return;
  }
  for (auto&& [key, node] : *t) {
    const std::string name(key.str());
    auto cls = parse_fault_class(name);
    if (!cls) {
      error(key, "unknown fault class " + quote(name) + " in on." + name + " of " + where + "; expected one of: " +
                     class_names());
      continue;
    }
    const std::string what = "on." + name + " of " + where;
    const toml::array* arr = node.as_array();
    if (!arr) {
      error(node, quote("on." + name) + " must be an array of ladder steps such as [\"throttle:cpu=20%\", "
                  "\"restart\"] (got " + describe(node) + ")");
      continue;
    }
    if (arr->empty()) {
      error(node, quote("on." + name) + " must list at least one ladder step (leave it out to only alert)");
      continue;
    }
    std::vector<LadderStep> steps;
    for (const toml::node& e : *arr) {
      const auto* s = e.as_string();
      if (!s) {
        error(e, "ladder steps in " + what + " must be strings such as \"restart\" (got " + describe(e) + ")");
        continue;
      }
      auto step = parse_ladder_step(s->get());
      if (step)
        steps.push_back(std::move(step.value()));
      else
        error(e, step.error().message + " (in " + what + ")");
    }
    p.on.emplace_back(*cls, std::move(steps));
  }
}

void Parser::services(const toml::node& n, Config& cfg) {
  const toml::array* arr = table_array(n, "service", "supervised service");
  if (!arr) return;
  std::map<std::string, const toml::node*> seen;
  size_t index = 0;
  for (const toml::node& e : *arr) {
    ++index;
    if (const toml::table* t = e.as_table())
      service(*t, index, seen, cfg);
    else
      error(e, "each [[service]] must be a table of service keys (got " + describe(e) + ")");
  }
}

void Parser::service(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen,
                     Config& cfg) {
  std::string where = "[[service]] #" + std::to_string(index);
  const size_t errors_before = errors_.size();
  ServiceConfig s;
  s.name = unique_name(t, where, seen, "service", true);
  if (!t.get("command"))
    error(t, where + " needs a \"command\", the argv to start, such as [\"/usr/bin/python3\", \"/opt/app.py\"]");

  const toml::node* backoff_initial = nullptr;
  const toml::node* backoff_max = nullptr;
  for (auto&& [key, node] : t) {
    const std::string_view k = key.str();
    if (k == "name") {
      // read above
    } else if (k == "command") {
      const toml::array* arr = node.as_array();
      if (!arr || arr->empty()) {
        error(node, "\"command\" must be a non-empty array of strings, the argv, such as [\"/usr/bin/python3\", "
                    "\"/opt/app.py\"] (got " + describe(node) + ")");
        continue;
      }
      std::vector<std::string> argv;
      for (const toml::node& e : *arr) {
        const auto* a = e.as_string();
        if (!a) {
          error(e, "\"command\" entries must be strings (got " + describe(e) + ")");
        } else if (a->get().find('\0') != std::string::npos) {
          error(e, "\"command\" entries must not contain a NUL character");
        } else if (argv.empty() && (a->get().empty() || a->get()[0] != '/')) {
          error(e, "\"command\"[0] must be an absolute path such as \"/usr/bin/python3\" (got " + describe(e) +
                       "): services are started without a PATH search");
          argv.push_back(a->get());
        } else {
          argv.push_back(a->get());
        }
      }
      s.command = std::move(argv);
    } else if (k == "user") {
      if (auto v = string(node, k, "\"nobody\" or \"1000\"")) s.user = *v;
    } else if (k == "cwd") {
      if (auto v = absolute_path(node, k, "\"/var/lib/counter\"")) s.cwd = *v;
    } else if (k == "env") {
      const toml::table* env = node.as_table();
      if (!env) {
        error(node, "\"env\" must be a table of strings such as { LANG = \"C.UTF-8\" } (got " + describe(node) +
                        ")");
        continue;
      }
      for (auto&& [ek, ev] : *env) {
        const std::string name(ek.str());
        const auto* v = ev.as_string();
        if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
          error(ek, "environment variable name " + quote(name) + " must be non-empty and contain no \"=\"");
        else if (!v)
          error(ev, "environment variable " + quote(name) + " must be a string (got " + describe(ev) + ")");
        else if (v->get().find('\0') != std::string::npos)
          error(ev, "environment variable " + quote(name) + " must not contain a NUL character");
        else
          s.env.emplace_back(name, v->get());
      }
    } else if (k == "restart") {
      const auto* v = node.as_string();
      const std::string r = v ? v->get() : "";
      if (r == "no")
        s.restart = ServiceConfig::Restart::No;
      else if (r == "on-failure")
        s.restart = ServiceConfig::Restart::OnFailure;
      else if (r == "always")
        s.restart = ServiceConfig::Restart::Always;
      else
        error(node, "\"restart\" must be \"no\", \"on-failure\" or \"always\" (got " + describe(node) + ")");
    } else if (k == "stop_grace") {
      if (auto d = duration(node, k)) s.stop_grace = *d;
    } else if (k == "backoff_initial") {
      if (auto d = positive_duration(node, k)) {
        s.backoff_initial = *d;
        backoff_initial = &node;
      }
    } else if (k == "backoff_max") {
      if (auto d = positive_duration(node, k)) {
        s.backoff_max = *d;
        backoff_max = &node;
      }
    } else if (k == "crash_loop_limit") {
      if (auto v = count(node, k, 1, kMaxCount, "the number of failed starts before the service stays down"))
        s.crash_loop_limit = static_cast<uint32_t>(*v);
    } else if (k == "crash_loop_window") {
      if (auto d = positive_duration(node, k)) s.crash_loop_window = *d;
    } else if (k == "checkpoint") {
      checkpoint(node, s.checkpoint, where);
    } else {
      unknown_key(key, where, kServiceKeys);
    }
  }
  if (errors_.size() != errors_before) return;
  if (s.backoff_initial > s.backoff_max) {
    const toml::node* at = backoff_max ? backoff_max : backoff_initial;
    error(at ? at->source() : t.source(),
          "\"backoff_initial\" (" + format_duration(s.backoff_initial) + ") must not be above \"backoff_max\" (" +
              format_duration(s.backoff_max) + (backoff_max ? "" : ", the default") + ") in " + where);
    return;
  }
  cfg.services.push_back(std::move(s));
}

void Parser::checkpoint(const toml::node& n, CheckpointConfig& c, const std::string& where) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"checkpoint\" must be a table such as { backend = \"app\", dir = \"/var/lib/app/ckpt\" } (got " +
                 describe(n) + ")");
    return;
  }
  CheckpointConfig out;
  if (!t->get("backend"))
    error(*t, "the checkpoint of " + where + " needs a \"backend\": \"app\" or \"criu\"");
  if (!t->get("dir"))
    error(*t, "the checkpoint of " + where + " needs a \"dir\", an absolute path where checkpoints are kept");
  for (auto&& [key, node] : *t) {
    const std::string_view k = key.str();
    if (k == "backend") {
      const auto* v = node.as_string();
      if (v && v->get() == "app")
        out.backend = CheckpointConfig::Backend::App;
      else if (v && v->get() == "criu")
        out.backend = CheckpointConfig::Backend::Criu;
      else
        error(node, "\"backend\" must be \"app\" or \"criu\" (got " + describe(node) + ")");
    } else if (k == "dir") {
      if (auto v = absolute_path(node, k, "\"/var/lib/counter/ckpt\"")) out.dir = *v;
    } else if (k == "every") {
      if (auto d = positive_duration(node, k)) out.every = *d;
    } else if (k == "keep") {
      if (auto v = count(node, k, 1, kMaxCount, "the number of checkpoints kept")) out.keep = static_cast<uint32_t>(*v);
    } else {
      unknown_key(key, "the checkpoint of " + where, kCheckpointKeys);
    }
  }
  c = std::move(out);
}

void Parser::limits(const toml::node& n, Config& cfg) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"limits\" must be a table: write [limits] (got " + describe(n) + ")");
    return;
  }
  for (auto&& [key, node] : *t) {
    if (key.str() == "actions_per_minute") {
      if (auto v = count(node, key.str(), 1, kMaxActionsPerMinute, "the number of actions allowed per minute"))
        cfg.limits.global_per_minute = static_cast<uint32_t>(*v);
    } else {
      unknown_key(key, "[limits]", kLimitsKeys);
    }
  }
}

void Parser::daemon(const toml::node& n, Config& cfg, const toml::node*& metrics) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"daemon\" must be a table: write [daemon] (got " + describe(n) + ")");
    return;
  }
  DaemonConfig& d = cfg.daemon;
  for (auto&& [key, node] : *t) {
    const std::string_view k = key.str();
    if (k == "syslog") {
      if (auto b = boolean(node, k)) d.syslog = *b;
    } else if (k == "syslog_forward") {
      auto v = string(node, k, "\"udp://loghost:514\"");
      if (!v) continue;
      if (!v->empty()) {
        auto a = parse_net_address(*v, true);
        if (!a) {
          error(node, "\"syslog_forward\": " + a.error().message + " (or \"\" for none)");
          continue;
        }
      }
      d.syslog_forward = *v;
    } else if (k == "syslog_burst") {
      if (auto v = count(node, k, 1, kMaxCount, "the number of alert lines allowed per syslog_per"))
        d.syslog_burst = static_cast<uint32_t>(*v);
    } else if (k == "syslog_per") {
      if (auto p = positive_duration(node, k)) d.syslog_per = *p;
    } else if (k == "socket") {
      if (auto v = path_or_off(node, k, "\"/run/faultprobe/faultprobe.sock\" (\"\" = no socket)")) d.socket_path = *v;
    } else if (k == "socket_group") {
      if (auto v = string(node, k, "\"adm\" (\"\" = root only)")) d.socket_group = *v;
    } else if (k == "metrics_listen") {
      metrics = &node;
      metrics_listen(node, cfg);
    } else if (k == "metrics_top_n") {
      if (auto v = count(node, k, 0, kMaxCount, "the number of per-process series per resource"))
        d.metrics_top_n = static_cast<uint32_t>(*v);
    } else if (k == "pin_dir") {
      if (auto v = path_or_off(node, k, "\"/sys/fs/bpf/faultprobe\" (\"\" = do not pin)")) d.pin_dir = *v;
    } else if (k == "lock_path") {
      if (auto v = absolute_path(node, k, "\"/run/faultprobe/faultprobed.lock\"")) d.lock_path = *v;
    } else if (k == "state_dir") {
      if (auto v = path_or_off(node, k, "\"/var/lib/faultprobe\" (\"\" = keep nothing)")) d.state_dir = *v;
    } else if (k == "log_dir") {
      if (auto v = absolute_path(node, k, "\"/var/log/faultprobe\"")) d.log_dir = *v;
    } else if (k == "max_procs") {
      if (auto v = count(node, k, 0, 1u << 22, "the probe's per-process slots (0 = twice the processes alive at start, "
                                               "at least 16384, at most pid_max)"))
        d.max_procs = static_cast<uint32_t>(*v);
    } else if (k == "throttle_backend") {
      if (auto v = string(node, k, "\"auto\" or \"signal\""); v && (*v == "auto" || *v == "signal"))
        d.throttle_backend = *v;
      else if (v)
        error(node, "\"throttle_backend\" must be \"auto\" or \"signal\" (got \"" + *v + "\")");
    } else {
      unknown_key(key, "[daemon]", kDaemonKeys);
    }
  }
}

const std::vector<std::string_view> kHardwareKeys = {"mce",   "memory", "pcie",       "disk",
                                                     "thermal", "hwmon", "hwmon_root", "hwmon_interval"};

void Parser::hardware(const toml::node& n, Config& cfg) {
  const toml::table* t = n.as_table();
  if (!t) {
    error(n, "\"hardware\" must be a table: write [hardware] (got " + describe(n) + ")");
    return;
  }
  HardwareConfig& h = cfg.hardware;
  for (auto&& [key, node] : *t) {
    const std::string_view k = key.str();
    bool* flag = k == "mce"       ? &h.mce
                 : k == "memory"  ? &h.memory
                 : k == "pcie"    ? &h.pcie
                 : k == "disk"    ? &h.disk
                 : k == "thermal" ? &h.thermal
                 : k == "hwmon"   ? &h.hwmon
                                  : nullptr;
    if (flag) {
      if (auto b = boolean(node, k)) *flag = *b;
    } else if (k == "hwmon_root") {
      if (auto v = absolute_path(node, k, "\"/sys/class/hwmon\"")) h.hwmon_root = *v;
    } else if (k == "hwmon_interval") {
      auto d = positive_duration(node, k);
      if (!d) continue;
      if (*d < std::chrono::milliseconds(100)) {
        error(node, "\"hwmon_interval\" must be at least 100ms (got " + describe(node) + ")");
        continue;
      }
      h.hwmon_interval = *d;
    } else {
      unknown_key(key, "[hardware]", kHardwareKeys);
    }
  }
}

void Parser::metrics_listen(const toml::node& n, Config& cfg) {
  auto v = string(n, "metrics_listen", "\"127.0.0.1:9464\" (\"\" = off)");
  if (!v) return;
  if (!v->empty()) {
    auto a = parse_net_address(*v, false);
    if (!a) {
      error(n, "\"metrics_listen\": " + a.error().message + " (or \"\" for off)");
      return;
    }
  }
  cfg.daemon.metrics_listen = *v;
}

std::optional<bool> Parser::boolean(const toml::node& n, std::string_view key) {
  if (const auto* b = n.as_boolean()) return b->get();
  error(n, quote(key) + " must be true or false (got " + describe(n) + ")");
  return std::nullopt;
}

std::optional<std::string> Parser::string(const toml::node& n, std::string_view key, std::string_view example) {
  const auto* s = n.as_string();
  if (!s) {
    error(n, quote(key) + " must be a string such as " + std::string(example) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  if (s->get().find('\0') != std::string::npos) {
    error(n, quote(key) + " must not contain a NUL character");
    return std::nullopt;
  }
  return s->get();
}

std::optional<std::string> Parser::absolute_path(const toml::node& n, std::string_view key,
                                                 std::string_view example) {
  auto v = string(n, key, example);
  if (v && (v->empty() || (*v)[0] != '/')) {
    error(n, quote(key) + " must be an absolute path such as " + std::string(example) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  return v;
}

// An absolute path, or "" to turn the feature off.
std::optional<std::string> Parser::path_or_off(const toml::node& n, std::string_view key, std::string_view example) {
  auto v = string(n, key, example);
  if (v && !v->empty() && (*v)[0] != '/') {
    error(n, quote(key) + " must be an absolute path such as " + std::string(example) + " (got " + describe(n) + ")");
    return std::nullopt;
  }
  return v;
}

std::optional<nanoseconds> Parser::positive_duration(const toml::node& n, std::string_view key) {
  auto d = duration(n, key);
  if (d && *d <= 0ns) {
    error(n, quote(key) + " must be longer than 0s (got " + describe(n) + ")");
    return std::nullopt;
  }
  return d;
}

std::optional<uint64_t> Parser::count(const toml::node& n, std::string_view key, uint64_t min, uint64_t max,
                                      std::string_view what) {
  const std::string expected = "an integer from " + std::to_string(min) + ", " + std::string(what);
  auto v = integer(n, key, max, expected);
  if (v && *v < min) {
    error(n, quote(key) + " must be at least " + std::to_string(min) + ", " + std::string(what) + " (got " +
                 describe(n) + ")");
    return std::nullopt;
  }
  return v;
}

std::vector<KnownKeys> section_keys() {
  return {{"policy", kPolicyKeys}, {"service", kServiceKeys}, {"checkpoint", kCheckpointKeys},
          {"limits", kLimitsKeys}, {"daemon", kDaemonKeys},   {"hardware", kHardwareKeys}};
}

}  // namespace fp::config_parse
