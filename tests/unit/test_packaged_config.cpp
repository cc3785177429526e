// The packaged /etc/faultprobe/faultprobe.toml (packaging/faultprobe.toml)
// has every key commented out at its built-in default: with those lines
// uncommented (the examples of [[rule]], [[policy]] and [[service]] stay
// comments: they have no default) it must parse to the built-in config, so a
// commented value that is not the real default fails here. The file as
// shipped goes through `faultprobe check-config` in tests/cli/default_config.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "config/config.h"

namespace fp {
namespace {

std::string packaged_config() {
  // FP_TEST_DATA_DIR is <source>/tests/data: the file is two levels up.
  auto path = std::filesystem::path(FP_TEST_DATA_DIR).parent_path().parent_path() / "packaging" / "faultprobe.toml";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "#key = value" and "#[table]" lines become active, except inside a
// commented "#[[array]]" example.
std::string uncomment_defaults(const std::string& text, int* active) {
  static const std::regex header(R"(^#(\[\[?)[a-z_.]+\]\]?\s*$)"), key(R"(^#[a-z_.]+ = )");
  std::istringstream in(text);
  std::string out, line;
  bool in_example = false;
  *active = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    bool on = false;
    if (std::regex_match(line, m, header)) {
      in_example = m[1] == "[[";
      on = !in_example;
    } else {
      on = !in_example && std::regex_search(line, key);
    }
    if (on) ++*active;
    out += (on ? line.substr(1) : line) + "\n";
  }
  return out;
}

TEST(PackagedConfig, CommentedValuesAreTheBuiltInDefaults) {
  int active = 0;
  const std::string text = uncomment_defaults(packaged_config(), &active);
  EXPECT_GE(active, 35) << text;  // 31 keys and 4 tables today
  auto parsed = parse_config(text, "faultprobe.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message << "\n" << text;
  const Config& c = parsed.value();
  const Config d = default_config();

  // Each field of the parsed file against the built-in value.
#define FP_SAME(field) EXPECT_EQ(c.field, d.field) << #field
  FP_SAME(sample_interval);
  FP_SAME(protected_comms);
  EXPECT_TRUE(c.policies.empty());
  EXPECT_TRUE(c.services.empty());
  ASSERT_EQ(c.rules.size(), d.rules.size());
  for (size_t i = 0; i < d.rules.size(); i++) {
    SCOPED_TRACE(d.rules[i].name);
    for (auto field : {&RuleConfig::hold, &RuleConfig::window, &RuleConfig::clear})
      EXPECT_EQ(c.rules[i].*field, d.rules[i].*field);
    FP_SAME(rules[i].name);
    FP_SAME(rules[i].enabled);
    FP_SAME(rules[i].severity);
    FP_SAME(rules[i].threshold);
    FP_SAME(rules[i].resolve);
    FP_SAME(rules[i].count);
    EXPECT_TRUE(c.rules[i].match.empty());
  }
  FP_SAME(limits.global_per_minute);
  for (auto field : {&DaemonConfig::syslog_forward, &DaemonConfig::socket_path, &DaemonConfig::socket_group,
                     &DaemonConfig::metrics_listen, &DaemonConfig::pin_dir, &DaemonConfig::lock_path,
                     &DaemonConfig::state_dir, &DaemonConfig::log_dir, &DaemonConfig::throttle_backend})
    EXPECT_EQ(c.daemon.*field, d.daemon.*field);
  for (auto field : {&DaemonConfig::syslog_burst, &DaemonConfig::metrics_top_n, &DaemonConfig::max_procs})
    EXPECT_EQ(c.daemon.*field, d.daemon.*field);
  FP_SAME(daemon.syslog);
  FP_SAME(daemon.syslog_per);
  for (auto field : {&HardwareConfig::mce, &HardwareConfig::memory, &HardwareConfig::pcie, &HardwareConfig::disk,
                     &HardwareConfig::thermal, &HardwareConfig::hwmon})
    EXPECT_EQ(c.hardware.*field, d.hardware.*field);
  FP_SAME(hardware.hwmon_root);
  FP_SAME(hardware.hwmon_interval);
#undef FP_SAME
}

}  // namespace
}  // namespace fp
