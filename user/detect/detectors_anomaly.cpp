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
  Values x{};               // the rates at the last look (they hold until the window changes)
  uint64_t last_ns = 0;     // tick of the last look
};

// At most this many missed one-second learns are caught up (the EWMA has
// forgotten everything older long before).
constexpr uint64_t kMaxCatchUp = 2000;

// Looked at only when a process's window may have changed (or it is
// anomalous, or its warm-up ends): in between its rates are constant, and the
// learns of the ticks it was not looked at are caught up at the next look.
// With constant rates the z scores only fall as the baseline learns them, so
// a process not anomalous at one look stays so until its window changes.
class AnomalyDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const ProcessTable& t = *w.procs;
    const uint64_t win = window_ns(rule_);
    for (const ProcKey& k : t.removed()) {
      baselines_.erase(k);
      hot_.erase(k);
    }
    // A process is looked at once per tick (dirty and hot ones overlap): a
    // look that got as far as scoring stamps its baseline with the tick; one
    // that stopped before had no effect a second look would repeat.
    auto visit = [&](const ProcState& s) {
      if (auto it = baselines_.find(s.key); it != baselines_.end() && it->second.last_ns == w.now_ns) return;
      look(w, s, win, out);
    };
    t.for_each_dirty(win, w.now_ns, !primed_, visit);
    primed_ = true;
    std::vector<ProcKey> hot(hot_.begin(), hot_.end());
    for (const ProcKey& k : hot) {
      if (const ProcState* s = t.find(k)) visit(*s);
    }
  }

 private:
  void look(const World& w, const ProcState& s, uint64_t win, std::vector<Finding>& out) {
    const ProcessTable& t = *w.procs;
    const uint64_t warmup_ns = uint64_t{rule_.count} * 1'000'000'000;
    hot_.erase(s.key);
    if (s.exited) {
      baselines_.erase(s.key);
      return;
    }
    // Most processes sleep: nothing changed in the window means every rate is 0.
    Values x{};
    if (idle_in_window(s, w.now_ns, win)) {
      if (s.first_seen_ns + win > w.now_ns) return;  // not a full window yet
    } else {
      WindowDelta d = t.window(s, w.now_ns, win);
      t.schedule_window(win, s.key, d.stable_until_ns);
      if (!d.full) return;
      x = values_of(d);
    }
    auto [it, fresh] = baselines_.try_emplace(s.key);
    Baseline& b = it->second;
    if (fresh) {
      b.first_ns = w.now_ns;
      b.next_learn_ns = w.now_ns;
    } else {
      catch_up(b, w.now_ns, w.tick_ns);
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
    } else {
      t.schedule_window(win, s.key, b.first_ns + warmup_ns);  // scoring starts then
    }

    // The baseline learns normal behaviour only: not while anomalous, or an
    // ongoing anomaly would become the new normal before it resolves.
    if (level == Level::None && w.now_ns >= b.next_learn_ns) {
      learn(b, x);
      b.next_learn_ns = w.now_ns + kLearnIntervalNs;
    }
    b.x = x;
    b.last_ns = w.now_ns;
    if (level == Level::None) return;
    hot_.insert(s.key);  // looked at every tick while anomalous
    if (!may_accuse(rule_, s, w)) return;

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
  }

  // The learns of b.x the ticks after b.last_ns and before `now` would have
  // made (one at the first tick at or after next_learn_ns, then a second later).
  static void catch_up(Baseline& b, uint64_t now, uint64_t tick_ns) {
    if (tick_ns == 0) tick_ns = 1;
    uint64_t n = 0;
    for (;;) {
      uint64_t t = b.last_ns + tick_ns;
      if (b.next_learn_ns > t) t = b.last_ns + (b.next_learn_ns - b.last_ns + tick_ns - 1) / tick_ns * tick_ns;
      if (t >= now) return;
      if (++n > kMaxCatchUp) {
        b.next_learn_ns = now;
        return;
      }
      learn(b, b.x);
      b.next_learn_ns = t + kLearnIntervalNs;
      b.last_ns = t;
    }
  }

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

  bool primed_ = false;
  std::unordered_map<ProcKey, Baseline, ProcKeyHash> baselines_;
  std::set<ProcKey> hot_;  // anomalous at the last look
};

}  // namespace

std::unique_ptr<Detector> make_anomaly(const RuleConfig& r) { return std::make_unique<AnomalyDetector>(r); }

}  // namespace fp
