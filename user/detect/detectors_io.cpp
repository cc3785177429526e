// Block IO rules: one process flooding the device while others' requests slow
// down (io_storm), and a process's own slow IO (io_latency).
#include "detect/detectors.h"
#include "detect/locate.h"
#include "detect/threshold.h"

namespace fp {
namespace {

// rules.md: the storm's culprit moves at least half of all IO bytes, and some
// other process sees IO latency p99 >= 50 ms. Neither is a rule field.
constexpr double kStormMinShare = 0.5;
constexpr double kStormVictimP99Ms = 50;

// Metric: the culprit's IO rate (MB/s): the bytes it read and wrote by the
// kernel's task IO accounting, so a buffered writer is named, not the flusher
// that writes its pages back. A big copy alone is no storm: without a victim
// there is no finding, whatever the rate. Victims are judged by the latency
// of the requests they submitted themselves; kernel threads are none (the
// flusher's and the journal's requests carry others' IO, the storm's own
// writeback among it: their latency is the storm, not a victim of it).
class IoStormDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    // Both kept current at every tick, whatever this one finds.
    if (!bytes_) bytes_.emplace(Resource::IoBytes, win);
    bytes_->refresh(w);
    std::vector<Victim> slow = victims_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Victim> v;
      if (d.delta.io_reqs < rule_.count || (s.flags & FP_PROC_KTHREAD) != 0) return v;
      double p99 = io_p99_ms(d);
      if (p99 >= kStormVictimP99Ms) v = Victim{s.key, s.comm, p99, d.delta.io_reqs};
      return v;
    });
    std::optional<Culprit> c = bytes_->top(w);
    if (!c || c->share < kStormMinShare) return;
    double mb_per_s = c->rate() / kBytesPerMB;
    Level level = level_of(mb_per_s, rule_);
    if (level == Level::None) return;

    std::vector<Victim> victims;
    for (Victim& v : slow) {
      if (v.key != c->key) victims.push_back(std::move(v));
    }
    if (victims.empty()) return;
    const ProcState* s = w.procs->find(c->key);
    if (s == nullptr || !rule_matches(rule_, *s, w)) return;

    nlohmann::json ev = rule_evidence(rule_, "io_mb_per_s", mb_per_s);
    ev.update(culprit_evidence(*c));
    // How it wrote: what it submitted itself (a buffered writer's pages go
    // out through the flusher) and how long dirty-page throttling held it.
    const WindowDelta cw = w.procs->window(*s, w.now_ns, win);
    ev["culprit_read_bytes"] = cw.delta.io_read_bytes;
    ev["culprit_write_bytes"] = cw.delta.io_write_bytes;
    ev["culprit_submitted_bytes"] = cw.delta.io_submit_bytes;
    ev["culprit_dirty_throttle_ms"] = round4(static_cast<double>(cw.delta.dirty_throttle_ns) / kNsPerMsec);
    ev["min_share"] = kStormMinShare;
    ev["victim_p99_ms"] = kStormVictimP99Ms;
    ev["victims"] = victims_evidence(victims, "io_p99_ms", "requests");
    Finding f = make_finding(rule_, c->key, level, std::move(ev));
    f.victims = victim_pids(victims);
    out.push_back(std::move(f));
  }

 private:
  std::optional<ConsumerIndex> bytes_;
  VictimIndex victims_;
};

// Metric: the process's own IO latency p99 (ms), with at least `count` requests.
class IoLatencyDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    cache_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Finding> f;
      if (d.delta.io_reqs == 0 || d.delta.io_reqs < rule_.count) return f;
      double p99 = io_p99_ms(d);
      Level level = level_of(p99, rule_);
      if (level == Level::None || !may_accuse(rule_, s, w)) return f;
      nlohmann::json ev = rule_evidence(rule_, "io_p99_ms", p99);
      ev["requests"] = d.delta.io_reqs;
      ev["min_requests"] = rule_.count;
      ev["io_mean_ms"] = round4(static_cast<double>(d.delta.io_lat_ns) / kNsPerMsec /
                                static_cast<double>(d.delta.io_reqs));
      ev.update(io_device_evidence(s.slot.io_dev));
      f = make_finding(rule_, s.key, level, std::move(ev));
      return f;
    });
    cache_.emit(out);
  }

 private:
  FindingCache cache_;
};

}  // namespace

std::unique_ptr<Detector> make_io_storm(const RuleConfig& r) { return std::make_unique<IoStormDetector>(r); }
std::unique_ptr<Detector> make_io_latency(const RuleConfig& r) { return std::make_unique<IoLatencyDetector>(r); }

}  // namespace fp
