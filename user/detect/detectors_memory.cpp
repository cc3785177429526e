// Memory rules: RSS that keeps growing (memory_leak), and processes stalled in
// direct reclaim because someone allocates (memory_pressure).
#include <algorithm>
#include <map>

#include "detect/detectors.h"
#include "detect/locate.h"
#include "detect/memory_budget.h"
#include "detect/threshold.h"

namespace fp {
namespace {

// A leak opens only on a steady climb: RSS grew in >= 80 % of the 1 s steps of
// a full window and by at least 64 MiB. An open leak stays open while the
// rate over the window stays above `resolve`.
constexpr double kLeakMinGrowingFraction = 0.8;
constexpr uint64_t kLeakMinGrowthBytes = uint64_t{64} << 20;
// The forecast: the same steady climb over a short span opens the leak at
// once when its slope would exhaust the memory left to the process (its
// cgroup's limit, else the host's) within the rule's horizon. A process that
// allocates once and plateaus (a heap sized at start, a cache warm-up) grows
// in a few of the span's steps, not in 80 % of them.
constexpr uint64_t kForecastSpanNs = 10'000'000'000ull;
// A forecast reaches no further than this many times the climb it has seen:
// a compiler growing 50 MB/s for 10 s on a host with 23 GB free "exhausts"
// it in 8 minutes, inside the horizon, and then stops. A leak that goes on
// keeps the climb growing and the time left shrinking until they meet (a
// 50 MB/s leak with 4 GB left opens after ~16 s, a minute before the OOM
// killer; in a 1 GiB cgroup after the first 10 s span).
constexpr double kForecastReach = 4.0;

// The climb's fields, the same for the window and the forecast.
void add_growth(nlohmann::json& ev, const WindowDelta& d) {
  ev["rss_start_bytes"] = d.rss_start;
  ev["rss_end_bytes"] = d.rss_end;
  ev["growth_bytes"] = d.rss_end - d.rss_start;
  ev["min_growth_bytes"] = kLeakMinGrowthBytes;
  ev["growing_fraction"] = round4(d.rss_growing_fraction);
  ev["min_growing_fraction"] = kLeakMinGrowingFraction;
}

class MemoryLeakDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (rule_.horizon.count() > 0 && w.memory_budget != nullptr) {
      // climbs not seen again for two spans are over (or their process is gone)
      std::erase_if(climbs_, [&](const auto& c) { return w.now_ns - std::min(w.now_ns, c.second.last_ns) > 2 * kForecastSpanNs; });
      forecast_.refresh(w, kForecastSpanNs, [&](const ProcState& s, const WindowDelta& d) { return forecast(w, s, d); });
      forecast_.emit(out);  // before the window's: the tracker keeps the first of equal rank
    }
    const uint64_t win = window_ns(rule_);
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      if (!d.full || d.rss_end <= d.rss_start) return f;
      uint64_t growth = d.rss_end - d.rss_start;
      double mb_per_s = per_sec(growth, d.span_ns) / kBytesPerMB;
      Level level = level_of(mb_per_s, rule_);
      if (level == Level::Strong &&
          (d.rss_growing_fraction < kLeakMinGrowingFraction || growth < kLeakMinGrowthBytes)) {
        level = Level::Weak;
      }
      if (level == Level::None || !may_accuse(rule_, s, w)) return f;
      nlohmann::json ev = rule_evidence(rule_, "rss_growth_mb_per_s", mb_per_s);
      add_growth(ev, d);
      ev["opened_by"] = "window";
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
  }

 private:
  std::optional<Finding> forecast(const World& w, const ProcState& s, const WindowDelta& d) {
    std::optional<Finding> f;
    const uint64_t growth = d.rss_end > d.rss_start ? d.rss_end - d.rss_start : 0;
    if (!d.full || growth < kLeakMinGrowthBytes || d.rss_growing_fraction < kLeakMinGrowingFraction) {
      climbs_.erase(s.key);
      return f;
    }
    // The climb began a span before the first evaluation that saw it.
    Climb& c = climbs_.try_emplace(s.key, Climb{w.now_ns - std::min(w.now_ns, d.span_ns), 0}).first->second;
    c.last_ns = w.now_ns;
    const double climb_s = double(w.now_ns - c.since_ns) / 1e9;
    if (!may_accuse(rule_, s, w)) return f;
    auto b = w.memory_budget->budget(s.key, w.now_ns);
    if (!b) return f;
    const double bytes_per_s = per_sec(growth, d.span_ns);
    const double tte_s = double(b->available_bytes) / bytes_per_s;
    const double horizon_s = std::chrono::duration<double>(rule_.horizon).count();
    if (tte_s > horizon_s || tte_s > kForecastReach * climb_s) return f;
    nlohmann::json ev = rule_evidence(rule_, "rss_growth_mb_per_s", bytes_per_s / kBytesPerMB);
    ev["opened_by"] = "forecast";
    ev["time_to_exhaustion_s"] = round4(tte_s);
    ev["horizon_s"] = round4(horizon_s);
    ev["limit"] = {{"name", b->limit},
                   {"limit_bytes", b->limit_bytes},
                   {"usage_bytes", b->usage_bytes},
                   {"available_bytes", b->available_bytes}};
    ev["span_s"] = round4(double(d.span_ns) / 1e9);
    ev["climb_s"] = round4(climb_s);
    add_growth(ev, d);
    f = make_finding(rule_, s.key, Level::Strong, std::move(ev));
    return f;
  }

  struct Climb {
    uint64_t since_ns;  // when the steady climb began
    uint64_t last_ns;   // last evaluation that saw it
  };
  FindingCache cache_;
  FindingCache forecast_;
  std::map<ProcKey, Climb> climbs_;
};

// Victims: direct-reclaim stall share of the window. Culprit: whoever grew RSS
// the most in the window (else caused the most page faults); the allocator may
// well be a victim itself, so nobody is excluded.
class MemoryPressureDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    if (!growth_) {
      growth_.emplace(Resource::MemoryGrowth, win);
      faults_.emplace(Resource::PageFaults, win);
    }
    growth_->refresh(w);
    faults_->refresh(w);
    std::vector<Victim> stalled = victims_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Victim> v;
      double share = reclaim_share(d, win);
      if (level_of(share, rule_) != Level::None) v = Victim{s.key, s.comm, share, d.delta.reclaims};
      return v;
    });
    if (stalled.empty()) return;

    Level level = level_of(stalled.front().value, rule_);
    std::vector<Victim> victims;
    for (const Victim& v : stalled) {
      if (level == Level::Weak || level_of(v.value, rule_) == Level::Strong) victims.push_back(v);
    }

    std::optional<Culprit> c = growth_->top(w);
    if (!c) c = faults_->top(w);
    if (!c) return;
    const ProcState* s = w.procs->find(c->key);
    if (s == nullptr || !rule_matches(rule_, *s, w)) return;

    nlohmann::json ev = rule_evidence(rule_, "victim_reclaim_share", stalled.front().value);
    ev.update(culprit_evidence(*c));
    ev["victims"] = victims_evidence(victims, "reclaim_share", "reclaims");
    Finding f = make_finding(rule_, c->key, level, std::move(ev));
    f.victims = victim_pids(victims);
    out.push_back(std::move(f));
  }

 private:
  VictimIndex victims_;
  std::optional<ConsumerIndex> growth_, faults_;
};

}  // namespace

std::unique_ptr<Detector> make_memory_leak(const RuleConfig& r) { return std::make_unique<MemoryLeakDetector>(r); }

std::unique_ptr<Detector> make_memory_pressure(const RuleConfig& r) {
  return std::make_unique<MemoryPressureDetector>(r);
}

}  // namespace fp
