// Pieces shared by the threshold detectors (detectors_{cpu,memory,io,fork,anomaly}.cpp):
// threshold/resolve levels, the rule's part of the evidence, and who may be accused.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "detect/detector.h"
#include "detect/process_table.h"
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

// Per-process findings kept between ticks. A process's window of a span stays
// the same until the process changes or a point leaves the window
// (WindowDelta::stable_until_ns); only then is it evaluated again, so an idle
// process costs nothing per tick. `eval` must depend on the process and its
// window only (not on the span of a young window, which keeps growing).
class FindingCache {
 public:
  template <typename Eval>  // std::optional<Finding>(const ProcState&, const WindowDelta&)
  void refresh(const World& w, uint64_t span_ns, Eval&& eval) {
    const ProcessTable& t = *w.procs;
    for (const ProcKey& k : t.removed()) hot_.erase(k);
    t.for_each_dirty(span_ns, w.now_ns, !primed_, [&](const ProcState& s) {
      std::optional<Finding> f;
      if (!s.exited && !idle_in_window(s, w.now_ns, span_ns)) {
        WindowDelta d = t.window(s, w.now_ns, span_ns);
        t.schedule_window(span_ns, s.key, d.stable_until_ns);
        f = eval(s, d);
      }
      if (f)
        hot_[s.key] = std::move(*f);
      else
        hot_.erase(s.key);
    });
    primed_ = true;
  }
  // The findings that hold now, in key order.
  void emit(std::vector<Finding>& out) const {
    for (const auto& [k, f] : hot_) out.push_back(f);
  }

 private:
  bool primed_ = false;
  std::map<ProcKey, Finding> hot_;
};

// Owns the rule; each detector adds evaluate().
class RuleDetector : public Detector {
 public:
  explicit RuleDetector(RuleConfig r) : rule_(std::move(r)) {}
  const RuleConfig& rule() const override { return rule_; }

 protected:
  RuleConfig rule_;
};

}  // namespace fp
