// The config parser's insides, shared by config.cpp (the rules and the file)
// and config_sections.cpp (policies, services, limits, daemon). Not an
// interface: only those two files include it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "config/config.h"
#include "config/known_keys.h"

namespace fp::config_parse {

using std::chrono::nanoseconds;

// Values as they read in messages.
std::string quote(std::string_view s);           // "text" with escapes
std::string number_text(double v);               // shortest form
std::string describe(const toml::node& n);       // what the user wrote: "10", 10, true, a table
std::string join(const std::vector<std::string_view>& items);
std::string class_names();                       // every fault class, comma-separated
RuleConfig builtin_rule(FaultClass c);           // a class's built-in rule (an added rule's starting point)
// The action sections' keys (config_sections.cpp) for known_config_keys().
std::vector<KnownKeys> section_keys();

class Parser {
 public:
  explicit Parser(std::string_view file) : file_(file.empty() ? "<config>" : file) {}

  Config run(const toml::table& root);
  bool failed() const { return !errors_.empty(); }

  // The earliest complaint in the file (a later one may only be a consequence).
  Error first_error() const {
    auto it = std::min_element(errors_.begin(), errors_.end(), [](const Complaint& a, const Complaint& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    return Error{EINVAL, it->text};
  }

 private:
  struct Complaint {
    uint32_t line, column;
    std::string text;
  };

  void error(const toml::source_region& where, const std::string& msg) {
    std::string text = file_;
    if (where.begin.line > 0)
      text += ":" + std::to_string(where.begin.line) + ":" + std::to_string(where.begin.column);
    text += ": " + msg;
    errors_.push_back({where.begin.line, where.begin.column, std::move(text)});
  }
  void error(const toml::node& n, const std::string& msg) { error(n.source(), msg); }
  void error(const toml::key& k, const std::string& msg) { error(k.source(), msg); }

  void unknown_key(const toml::key& k, std::string_view where, const std::vector<std::string_view>& expected,
                   std::string_view hint = {}) {
    std::string msg = "unknown key " + quote(k.str());
    if (!where.empty()) msg += " in " + std::string(where);
    msg += "; expected one of: " + join(expected);
    if (!hint.empty()) msg += "; " + std::string(hint);
    error(k, msg);
  }

  void sample_interval(const toml::node& n, Config& cfg);
  void protected_comms(const toml::node& n, Config& cfg);
  void overrides(const toml::node& n, Config& cfg);
  void added_rules(const toml::node& n, Config& cfg);
  void added_rule(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen,
                  Config& cfg);
  void apply_rule(const toml::table& t, RuleConfig& r, const std::string& where, bool added);
  void apply_match(const toml::node& n, ProcessMatch& m, const std::string& where);
  void pressure_key(const toml::node& n, std::string_view k, RuleConfig& r, const std::string& where);
  // [[logwatch]] (config_logwatch.cpp): a mistake there leaves that section out (Config::left_out).
  void logwatches(const toml::node& n, Config& cfg);
  void logwatch(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen, Config& cfg);
  void logwatch_names(Config& cfg);
  // Moves the complaints made since `errors_before` into `out` (soft errors).
  void soften(size_t errors_before, std::vector<std::string>& out) {
    for (size_t i = errors_before; i < errors_.size(); i++) out.push_back(std::move(errors_[i].text));
    errors_.resize(errors_before);
  }

  // The action sections (policy, service, limits, daemon): config_sections.cpp.
  const toml::array* table_array(const toml::node& n, std::string_view key, std::string_view what);
  std::string unique_name(const toml::table& t, std::string& where, std::map<std::string, const toml::node*>& seen,
                          std::string_view kind, bool service);
  void policies(const toml::node& n, Config& cfg);
  void policy(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen, Config& cfg);
  void ladders(const toml::node& n, PolicyConfig& p, const std::string& where);
  void services(const toml::node& n, Config& cfg);
  void service(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen, Config& cfg);
  void checkpoint(const toml::node& n, CheckpointConfig& c, const std::string& where);
  void limits(const toml::node& n, Config& cfg);
  void daemon(const toml::node& n, Config& cfg, const toml::node*& metrics_listen);
  void metrics_listen(const toml::node& n, Config& cfg);
  void hardware(const toml::node& n, Config& cfg);
  std::optional<bool> boolean(const toml::node& n, std::string_view key);
  std::optional<std::string> string(const toml::node& n, std::string_view key, std::string_view example);
  std::optional<std::string> absolute_path(const toml::node& n, std::string_view key, std::string_view example);
  std::optional<std::string> path_or_off(const toml::node& n, std::string_view key, std::string_view example);
  std::optional<nanoseconds> positive_duration(const toml::node& n, std::string_view key);
  std::optional<uint64_t> count(const toml::node& n, std::string_view key, uint64_t min, uint64_t max,
                                std::string_view what);

  std::optional<double> number(const toml::node& n, std::string_view key);
  std::optional<nanoseconds> duration(const toml::node& n, std::string_view key);
  std::optional<uint64_t> integer(const toml::node& n, std::string_view key, uint64_t max,
                                  std::string_view what);
  std::optional<std::string> glob(const toml::node& n, std::string_view key);

  std::string file_;
  std::vector<Complaint> errors_;
};

}  // namespace fp::config_parse
