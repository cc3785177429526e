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

  EXPECT_EQ(c.sample_interval, d.sample_interval);
  EXPECT_EQ(c.protected_comms, d.protected_comms);
  EXPECT_TRUE(c.policies.empty());
  EXPECT_TRUE(c.services.empty());
  ASSERT_EQ(c.rules.size(), d.rules.size());
  for (size_t i = 0; i < d.rules.size(); i++) {
    const RuleConfig &r = c.rules[i], &b = d.rules[i];
    SCOPED_TRACE(b.name);
    EXPECT_EQ(r.name, b.name);
    EXPECT_EQ(r.enabled, b.enabled);
    EXPECT_EQ(r.severity, b.severity);
    EXPECT_EQ(r.threshold, b.threshold);
    EXPECT_EQ(r.resolve, b.resolve);
    EXPECT_EQ(r.hold, b.hold);
    EXPECT_EQ(r.window, b.window);
    EXPECT_EQ(r.clear, b.clear);
    EXPECT_EQ(r.count, b.count);
    EXPECT_TRUE(r.match.empty());
  }
  EXPECT_EQ(c.limits.global_per_minute, d.limits.global_per_minute);

  const DaemonConfig &cd = c.daemon, &dd = d.daemon;
  EXPECT_EQ(cd.syslog, dd.syslog);
  EXPECT_EQ(cd.syslog_forward, dd.syslog_forward);
  EXPECT_EQ(cd.syslog_burst, dd.syslog_burst);
  EXPECT_EQ(cd.syslog_per, dd.syslog_per);
  EXPECT_EQ(cd.socket_path, dd.socket_path);
  EXPECT_EQ(cd.socket_group, dd.socket_group);
  EXPECT_EQ(cd.metrics_listen, dd.metrics_listen);
  EXPECT_EQ(cd.metrics_top_n, dd.metrics_top_n);
  EXPECT_EQ(cd.pin_dir, dd.pin_dir);
  EXPECT_EQ(cd.lock_path, dd.lock_path);
  EXPECT_EQ(cd.state_dir, dd.state_dir);
  EXPECT_EQ(cd.log_dir, dd.log_dir);
  EXPECT_EQ(cd.max_procs, dd.max_procs);

  const HardwareConfig &ch = c.hardware, &dh = d.hardware;
  EXPECT_EQ(ch.mce, dh.mce);
  EXPECT_EQ(ch.memory, dh.memory);
  EXPECT_EQ(ch.pcie, dh.pcie);
  EXPECT_EQ(ch.disk, dh.disk);
  EXPECT_EQ(ch.thermal, dh.thermal);
  EXPECT_EQ(ch.hwmon, dh.hwmon);
  EXPECT_EQ(ch.hwmon_root, dh.hwmon_root);
  EXPECT_EQ(ch.hwmon_interval, dh.hwmon_interval);
}

}  // namespace
}  // namespace fp
