#include "detect/threshold.h"

#include <cmath>
#include <string>

#include "detect/detectors.h"

namespace fp {

// `value > 0` for Strong keeps a rule configured with threshold 0 from firing
// on every idle process.
Level level_of(double value, const RuleConfig& r) {
  if (value >= r.threshold && value > 0) return Level::Strong;
  if (value > r.resolve) return Level::Weak;
  return Level::None;
}

double per_sec(uint64_t amount, uint64_t span_ns) {
  return span_ns > 0 ? static_cast<double>(amount) * kNsPerSec / static_cast<double>(span_ns) : 0;
}

double share_of_span(uint64_t ns, uint64_t span_ns) {
  return span_ns > 0 ? static_cast<double>(ns) / static_cast<double>(span_ns) : 0;
}

bool may_accuse(const RuleConfig& r, const ProcState& s, const World& w) {
  return !s.exited && may_blame(s, w) && rule_matches(r, s, w);
}

double round4(double v) { return std::round(v * 1e4) / 1e4; }

nlohmann::json rule_evidence(const RuleConfig& r, std::string_view metric, double value) {
  nlohmann::json j = nlohmann::json::object();
  j["metric"] = std::string(metric);
  j["value"] = round4(value);
  j["threshold"] = r.threshold;
  j["resolve"] = r.resolve;
  j["window_ms"] = static_cast<uint64_t>(r.window.count()) / 1'000'000;
  return j;
}

Finding make_finding(const RuleConfig& r, const ProcKey& culprit, Level level, nlohmann::json evidence) {
  Finding f;
  f.culprit = culprit;
  f.strong = level == Level::Strong;
  f.severity = r.severity;
  f.evidence = std::move(evidence);
  return f;
}

}  // namespace fp
