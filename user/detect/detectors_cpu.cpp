// CPU rules: a process burning cores (cpu_runaway), and processes waiting on
// the run queue because another one holds the CPUs (runq_starvation).
#include <algorithm>

#include "detect/detectors.h"
#include "detect/locate.h"
#include "detect/threshold.h"

namespace fp {
namespace {

// Cores = on-CPU time / window, all threads together.
//
// A process younger than the window has not shown it sustains anything over
// a window. When the hold is at least the window, it need not show it before
// the hold starts: a fault opens only after the finding held for the hold,
// at every tick, and the last ticks of the hold see full windows. Its cores
// are then taken over its life (at least a tick), and the hold starts when
// the load does instead of a window later (the latency was hold + window).
// With a shorter hold, only full windows count: the hold alone would not
// reach a full window, and a young process's first ticks would decide.
class CpuRunawayDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const bool hold_covers_window = rule_.hold.count() >= 0 && static_cast<uint64_t>(rule_.hold.count()) >= win;
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      if (!d.full && !hold_covers_window) return f;
      const bool by_life = !d.full;
      const uint64_t span = by_life ? std::max(d.span_ns, w.tick_ns) : d.span_ns;
      double cores = share_of_span(d.delta.cpu_ns, span);
      Level level = level_of(cores, rule_);
      if (level == Level::None || !may_accuse(rule_, s, w)) return f;
      // A finding over a young life would go stale as the life grows while the
      // process idles: look at it again at the next tick.
      if (by_life) w.procs->schedule_window(win, s.key, w.now_ns + 1);
      nlohmann::json ev = rule_evidence(rule_, "cpu_cores", cores);
      ev["cpu_ms"] = d.delta.cpu_ns / 1'000'000;
      ev["span_ms"] = span / 1'000'000;
      ev["ncpus"] = w.host.ncpus;
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
  }

 private:
  FindingCache cache_;
};

// A culprit that holds a meaningful part of the CPUs: half a core, or more
// than anyone else (victims included). Below that, the waits have no single
// cause to name.
constexpr double kMinCulpritCores = 0.5;

// Victims: run-queue wait p99 above the limit with at least `count` waits in
// the window. Culprit: the top CPU consumer of the same window that is not a
// victim and may be blamed.
class RunqStarvationDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    std::vector<Victim> suffering = victims_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Victim> v;
      if (d.delta.runq_waits < rule_.count) return v;
      double p99 = runq_p99_ms(d);
      if (level_of(p99, rule_) != Level::None) v = Victim{s.key, s.comm, p99, d.delta.runq_waits};
      return v;
    });
    if (!cpu_) cpu_.emplace(Resource::Cpu, win);
    cpu_->refresh(w);
    if (suffering.empty()) return;

    // Sorted worst first: the first victim decides the level.
    Level level = level_of(suffering.front().value, rule_);
    std::vector<Victim> victims;
    for (const Victim& v : suffering) {
      if (level == Level::Weak || level_of(v.value, rule_) == Level::Strong) victims.push_back(v);
    }

    // Everyone who waits is excluded, also those only in the hysteresis band.
    std::optional<Culprit> c = cpu_->top(w, victim_keys(suffering));
    if (!c || (c->rate() < kMinCulpritCores && !c->largest)) return;
    const ProcState* s = w.procs->find(c->key);
    if (s == nullptr || !rule_matches(rule_, *s, w)) return;

    nlohmann::json ev = rule_evidence(rule_, "victim_runq_p99_ms", suffering.front().value);
    ev.update(culprit_evidence(*c));
    ev["culprit_cores"] = round4(c->rate());
    ev["victims"] = victims_evidence(victims, "runq_p99_ms", "waits");
    Finding f = make_finding(rule_, c->key, level, std::move(ev));
    f.victims = victim_pids(victims);
    out.push_back(std::move(f));
  }

 private:
  VictimIndex victims_;
  std::optional<ConsumerIndex> cpu_;
};

}  // namespace

std::unique_ptr<Detector> make_cpu_runaway(const RuleConfig& r) { return std::make_unique<CpuRunawayDetector>(r); }

std::unique_ptr<Detector> make_runq_starvation(const RuleConfig& r) {
  return std::make_unique<RunqStarvationDetector>(r);
}

}  // namespace fp
