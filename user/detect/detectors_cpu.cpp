// CPU rule: a process burning cores (cpu_runaway). Processes waiting on the
// run queue because another one holds their CPU (runq_starvation) are in
// detectors_runq.cpp.
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

}  // namespace

std::unique_ptr<Detector> make_cpu_runaway(const RuleConfig& r) { return std::make_unique<CpuRunawayDetector>(r); }

}  // namespace fp
