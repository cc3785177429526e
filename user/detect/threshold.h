// Pieces shared by the threshold detectors (detectors_{cpu,memory,io,fork,anomaly}.cpp):
// threshold/resolve levels, the rule's part of the evidence, and who may be accused.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "detect/detector.h"
#include "detect/history.h"
#include "detect/locate.h"

namespace fp {

inline constexpr double kNsPerSec = 1e9;
inline constexpr double kNsPerMsec = 1e6;
inline constexpr double kBytesPerMB = 1e6;  // rules.md says MB/s (SI), as opposed to MiB for sizes

// Where a metric stands against a rule: Strong opens a fault (>= threshold),
// Weak only keeps an open one open (> resolve, hysteresis), None clears.
enum class Level { None, Weak, Strong };
Level level_of(double value, const RuleConfig& r);

inline uint64_t window_ns(const RuleConfig& r) { return static_cast<uint64_t>(r.window.count()); }

// Per second of `span_ns` (0 for an empty span).
double per_sec(uint64_t amount, uint64_t span_ns);
// A duration as a share of `span_ns`: cpu_ns -> cores, reclaim_ns -> stall share (0 for an empty span).
double share_of_span(uint64_t ns, uint64_t span_ns);

// A live process this rule may name as culprit: not exited, may_blame() and the rule's match.
// The match is checked last: it may need ProcInfo (a /proc read on a cache miss).
bool may_accuse(const RuleConfig& r, const ProcState& s, const World& w);

// {"metric": name, "value": v, "threshold", "resolve", "window_ms"}: every finding's evidence starts with this.
nlohmann::json rule_evidence(const RuleConfig& r, std::string_view metric, double value);

// A finding at `level` (not None) with the rule's severity.
Finding make_finding(const RuleConfig& r, const ProcKey& culprit, Level level, nlohmann::json evidence);

double round4(double v);

// Owns the rule; each detector adds evaluate().
class RuleDetector : public Detector {
 public:
  explicit RuleDetector(RuleConfig r) : rule_(std::move(r)) {}
  const RuleConfig& rule() const override { return rule_; }

 protected:
  RuleConfig rule_;
};

}  // namespace fp
