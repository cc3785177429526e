// The shipped Prometheus rules (packaging/prometheus/faultprobe.rules.yml) and
// their promtool unit tests name only metrics faultprobed really exports:
// promtool checks the syntax and the alerts' behaviour on made-up series
// (ctest prometheus_rules_*), not that a renamed metric left a rule that can
// never fire. Every faultprobe_* name in either file (recording rules'
// level:metric:operation names aside) must be a family of render_metrics().
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "alert/metrics.h"

namespace fp {
namespace {

std::string read_packaged(const char* name) {
  // FP_TEST_DATA_DIR is <source>/tests/data: packaging/ is two levels up.
  auto path = std::filesystem::path(FP_TEST_DATA_DIR).parent_path().parent_path() / "packaging" / "prometheus" / name;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// faultprobe_* metric names, skipping those inside a recording rule's name
// (after a ':', as in instance:faultprobe_probe_drops:rate5m).
std::set<std::string> metric_names(const std::string& text) {
  static const std::regex name_re("faultprobe_[a-z0-9_]+");
  std::set<std::string> names;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name_re); it != std::sregex_iterator(); ++it) {
    auto pos = static_cast<size_t>(it->position());
    if (pos > 0 && (text[pos - 1] == ':' || std::isalnum(static_cast<unsigned char>(text[pos - 1])))) continue;
    names.insert(it->str());
  }
  return names;
}

// Every family (and a summary's _count) of an exposition with one of each
// kind of series: an open fault, an exported process.
std::set<std::string> exported_families() {
  DaemonView v;
  v.open_faults.push_back(
      {{"class", "hang"}, {"severity", "warning"}, {"rule", "hang"}, {"pid", 10}, {"comm", "dd"}});
  ProcessRow p;
  p.pid = 10;
  p.comm = "dd";
  p.cpu_pct = 50;
  v.procs.push_back(p);
  std::set<std::string> families;
  std::istringstream in(render_metrics(v, 20));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::istringstream ls(line.substr(7));
    std::string name, type;
    ls >> name >> type;
    families.insert(name);
    if (type == "summary") families.insert(name + "_count");
  }
  return families;
}

TEST(PrometheusRules, NameOnlyExportedMetrics) {
  std::set<std::string> families = exported_families();
  ASSERT_TRUE(families.count("faultprobe_open_fault"));
  for (const char* file : {"faultprobe.rules.yml", "faultprobe.rules.test.yml"}) {
    std::set<std::string> used = metric_names(read_packaged(file));
    EXPECT_GE(used.size(), 5u) << file;
    for (const auto& name : used) EXPECT_TRUE(families.count(name)) << file << " names " << name << ", not exported";
  }
}

// The alerts the README and the e2e test rely on are there.
TEST(PrometheusRules, HaveTheFleetAlerts) {
  std::string rules = read_packaged("faultprobe.rules.yml");
  for (const char* alert : {"FaultprobeFault", "FaultprobeProbeDrops", "FaultprobeDaemonDown", "FaultprobeTargetsAbsent",
                            "FaultprobeScrapeFailing", "FaultprobeSamplingStalled", "FaultprobeSyslogForwardFailing"}) {
    EXPECT_NE(rules.find(std::string("- alert: ") + alert + "\n"), std::string::npos) << alert;
    EXPECT_NE(read_packaged("faultprobe.rules.test.yml").find(std::string("alertname: ") + alert + "\n"),
              std::string::npos)
        << alert << " has no promtool test case";
  }
}

}  // namespace
}  // namespace fp
