// anomaly: a long-lived process far outside its own learned behaviour.
//
// Per process and metric an EWMA of the mean and the variance of the rate over
// the rule's window, learned once per second. At every tick the current rate is
// compared with it: z = (x - mean) / max(stddev, floor). The floors are absolute
// (a process idle for an hour has stddev ~0; without a floor its first
// millisecond of work would be a 1000-sigma event). Only rises count.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "detect/detectors.h"
#include "detect/threshold.h"

namespace fp {
namespace {

struct MetricSpec {
  const char* name;
  double floor;  // smallest stddev used for z (the metric's unit)
};

// z >= 8 (the default threshold) thus needs a rise of at least 8 floors:
// 1.6 cores, 40 MB/s, 8000 faults/s, 0.4 of the window spent waiting to run.
constexpr std::array<MetricSpec, 4> kMetrics{{
    {"cpu_cores", 0.2},
    {"io_bytes_per_s", 5e6},
    {"page_faults_per_s", 1000},
    {"runq_wait_share", 0.05},
}};
using Values = std::array<double, kMetrics.size()>;

// Weight of a new one-second sample: a memory of ~20 s.
constexpr double kAlpha = 0.05;
constexpr uint64_t kLearnIntervalNs = 1'000'000'000;

Values values_of(const WindowDelta& d) {
  return {share_of_span(d.delta.cpu_ns, d.span_ns),
          per_sec(d.delta.io_read_bytes + d.delta.io_write_bytes, d.span_ns),
          per_sec(d.delta.page_faults, d.span_ns),
          share_of_span(d.delta.runq_wait_ns, d.span_ns)};
}

struct Baseline {
  uint64_t first_ns = 0;    // first full window seen: start of the warm-up
  uint64_t next_learn_ns = 0;
  uint64_t samples = 0;
  Values mean{}, var{};
  uint64_t seen_tick = 0;   // the last tick its process was in the table
};

struct ProcKeyHash {
  size_t operator()(const ProcKey& k) const noexcept {
    return std::hash<uint64_t>()(k.start_ns * 0x9e3779b97f4a7c15ull ^ k.tgid);
  }
};

class AnomalyDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const uint64_t warmup_ns = uint64_t{rule_.count} * 1'000'000'000;
    ++tick_;

    w.procs->for_each([&](const ProcState& s) {
      if (s.exited) return;
      // Most processes sleep: nothing changed in the window means every rate is 0.
      Values x{};
      if (idle_in_window(s, w.now_ns, win)) {
        if (s.first_seen_ns + win > w.now_ns) return;  // not a full window yet
      } else {
        WindowDelta d = w.procs->window(s, w.now_ns, win);
        if (!d.full) return;
        x = values_of(d);
      }
      Baseline& b = baselines_[s.key];
      b.seen_tick = tick_;
      if (b.samples == 0) {
        b.first_ns = w.now_ns;
        b.next_learn_ns = w.now_ns;
      }

      // Score against the baseline as it was before this sample.
      Level level = Level::None;
      size_t worst = 0;
      Values z{};
      if (b.samples > 0 && w.now_ns - b.first_ns >= warmup_ns) {
        for (size_t i = 0; i < kMetrics.size(); ++i) {
          z[i] = (x[i] - b.mean[i]) / std::max(std::sqrt(b.var[i]), kMetrics[i].floor);
          if (z[i] > z[worst]) worst = i;
        }
        level = level_of(z[worst], rule_);
      }

      // The baseline learns normal behaviour only: not while anomalous, or an
      // ongoing anomaly would become the new normal before it resolves.
      if (level == Level::None && w.now_ns >= b.next_learn_ns) {
        learn(b, x);
        b.next_learn_ns = w.now_ns + kLearnIntervalNs;
      }
      if (level == Level::None || !may_accuse(rule_, s, w)) return;

      nlohmann::json ev = rule_evidence(rule_, std::string(kMetrics[worst].name) + "_z", z[worst]);
      nlohmann::json metrics = nlohmann::json::object();
      for (size_t i = 0; i < kMetrics.size(); ++i) {
        metrics[kMetrics[i].name] = {{"value", round4(x[i])},
                                     {"mean", round4(b.mean[i])},
                                     {"stddev", round4(std::sqrt(b.var[i]))},
                                     {"floor", kMetrics[i].floor},
                                     {"z", round4(z[i])}};
      }
      ev["metrics"] = std::move(metrics);
      ev["baseline_samples"] = b.samples;
      ev["warmup_s"] = rule_.count;
      out.push_back(make_finding(rule_, s.key, level, std::move(ev)));
    });

    // Exited processes (and reused pids, which are new keys) lose their
    // baseline: swept every 64 ticks, not every tick (at 10,000 processes a
    // sweep costs more than the rest of the detector).
    if (tick_ % 64 == 0) std::erase_if(baselines_, [&](const auto& kv) { return kv.second.seen_tick != tick_; });
  }

 private:
  static void learn(Baseline& b, const Values& x) {
    for (size_t i = 0; i < kMetrics.size(); ++i) {
      if (b.samples == 0) {
        b.mean[i] = x[i];
        b.var[i] = 0;
        continue;
      }
      // Incremental EWMA of mean and variance (West / Finch).
      double diff = x[i] - b.mean[i];
      double incr = kAlpha * diff;
      b.mean[i] += incr;
      b.var[i] = (1 - kAlpha) * (b.var[i] + diff * incr);
    }
    ++b.samples;
  }

  // Hashed: looked up for every process at every tick.
  std::unordered_map<ProcKey, Baseline, ProcKeyHash> baselines_;
  uint64_t tick_ = 0;
};

}  // namespace

std::unique_ptr<Detector> make_anomaly(const RuleConfig& r) { return std::make_unique<AnomalyDetector>(r); }

}  // namespace fp
