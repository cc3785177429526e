// runq_starvation: processes waiting on the run queue (victims: wait p99
// above the limit) because another one holds their CPU (the culprit).
//
// Where the probe charges waits per CPU (World::runq_blame), each victim
// blames whoever ran on the CPUs it waited on while it waited, by their share
// of its wait; victims of one culprit make one finding. A culprit may itself
// wait (an RT spinner under RT throttling waits while its victims get their
// few milliseconds): of two processes that blame each other, the one that
// caused the larger wait is the culprit. Without the probe's charges, the
// culprit is the top CPU consumer of the window that is not a victim.
#include <algorithm>
#include <map>

#include "detect/cpu_quota.h"
#include "detect/detectors.h"
#include "detect/locate.h"
#include "detect/locate_runq.h"
#include "detect/threshold.h"

namespace fp {
namespace {

// Below this share of a victim's wait a runner is one cause among several,
// not the one to name.
constexpr double kMinWaitShare = 0.25;
// ... and that cost it at least this share of the blame window: a runner that
// delayed a victim by 174 or 406 ms in 11 s (a busy host's HTTP server beside
// kdamond.0, whose one long wait made its p99, measured on the campaign's
// clean load) is one of many on a full host, not its starver. A spinner
// beside its victim costs it most of the window.
constexpr double kMinCausedShareOfWindow = 0.10;
// A culprit (top-consumer fallback) that holds a meaningful part of the CPUs:
// half a core, or more than anyone else (victims included).
constexpr double kMinCulpritCores = 0.5;
// A victim that spent this share of the window waiting on the run queue
// needs no minimum count of waits.
constexpr double kStarvedShareOfWindow = 0.5;
// Runners listed in the evidence, per victim.
constexpr size_t kRunnersShown = 4;
// A process whose CPU quota held it off the CPU for at least this share of
// its run-queue wait is waiting for its quota, not starved by a runner. Low
// on purpose: cpu.stat counts a group's throttled time once per CPU, and a
// process's waits once per thread.
constexpr double kQuotaShareOfWait = 0.25;

// One victim's blame on its culprit.
struct Blame {
  const Victim* victim;
  VictimBlame vb;
  const RunnerShare* culprit;  // into vb.runners
  ProcKey culprit_key;
};

nlohmann::json runner_json(const RunnerShare& r, const World& w) {
  const ProcState* s = r.tgid != 0 ? w.procs->find_pid(r.tgid) : nullptr;
  nlohmann::json j = {{"pid", r.tgid}, {"comm", s != nullptr ? s->comm : ""}, {"share", round4(r.share)}};
  if (r.entry != nullptr && r.tgid != 0) {
    j["policy"] = sched_policy_name(r.entry->policy);
    j["rt_priority"] = r.entry->rt_priority;
    j["nice"] = r.entry->static_prio - 120;
  }
  return j;
}

class RunqStarvationDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    std::vector<Victim> suffering = victims_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Victim> v;
      // `count` waits make a p99; a process that waited most of the window
      // in a few long waits (a CFS task beside an RT spinner gets one 50 ms
      // slice a second) starves the most and is a victim however few they are.
      const bool starved = double(d.delta.runq_wait_ns) >= kStarvedShareOfWindow * double(win);
      if (d.delta.runq_waits < rule_.count && !(starved && d.delta.runq_waits > 0)) return v;
      double p99 = runq_p99_ms(d);
      if (level_of(p99, rule_) != Level::None) v = Victim{s.key, s.comm, p99, d.delta.runq_waits};
      return v;
    });
    if (w.cpu_quota != nullptr) drop_quota_held(w, win, suffering);
    if (w.runq_blame == nullptr) {
      by_top_consumer(w, win, suffering, out);
      return;
    }
    // The probe's charges are read only while somebody starves.
    if (suffering.empty()) {
      window_.clear();
      return;
    }
    if (!window_.update(*w.runq_blame, w.now_ns, win)) return;
    by_cpu_runners(w, suffering, out);
  }

 private:
  // Victims whose own CPU quota (their cgroup's, their container's, or a
  // throttle faultprobed applied) made them wait are nobody's victims: the
  // kernel counts throttled time as run-queue wait, and whoever ran meanwhile
  // did not cause it. A quota first seen this tick has no readings to compare
  // yet: its process waits one tick.
  static void drop_quota_held(const World& w, uint64_t win, std::vector<Victim>& suffering) {
    std::erase_if(suffering, [&](const Victim& v) {
      std::optional<QuotaWait> q = w.cpu_quota->quota_wait(v.key, w.now_ns, win);
      if (!q) return false;
      if (q->span_ns == 0) return true;
      const ProcState* s = w.procs->find(v.key);
      if (s == nullptr) return true;
      const WindowDelta d = w.procs->window(*s, w.now_ns, win);
      const double wait_rate = double(d.delta.runq_wait_ns) / double(std::max<uint64_t>(d.span_ns, 1));
      const double held_rate = double(q->throttled_ns) / double(q->span_ns);
      return held_rate >= kQuotaShareOfWait * wait_rate;
    });
  }

  void by_cpu_runners(const World& w, const std::vector<Victim>& suffering, std::vector<Finding>& out) {
    const std::vector<RunqBlameEntry> delta = window_.delta();
    std::vector<Blame> blames;
    const double min_caused_ns = kMinCausedShareOfWindow * double(window_.span_ns());
    for (const Victim& v : suffering) {
      Blame b{&v, blame_of(delta, v.key.tgid), nullptr, {}};
      for (const RunnerShare& r : b.vb.runners) {
        if (r.share < kMinWaitShare || double(r.ns) < min_caused_ns) break;
        const ProcState* s = r.tgid != 0 ? w.procs->find_pid(r.tgid) : nullptr;
        if (s == nullptr || !may_accuse(rule_, *s, w)) continue;
        b.culprit = &r;
        b.culprit_key = s->key;
        break;
      }
      if (b.culprit != nullptr) blames.push_back(std::move(b));
    }
    // Two processes that blame each other: the larger wait names the culprit.
    std::vector<bool> dropped(blames.size(), false);
    for (size_t i = 0; i < blames.size(); i++) {
      for (size_t j = i + 1; j < blames.size(); j++) {
        if (blames[i].culprit_key != blames[j].victim->key || blames[j].culprit_key != blames[i].victim->key)
          continue;
        (blames[i].culprit->ns >= blames[j].culprit->ns ? dropped[j] : dropped[i]) = true;
      }
    }
    std::map<ProcKey, std::vector<const Blame*>> by_culprit;  // victims worst first (suffering's order)
    for (size_t i = 0; i < blames.size(); i++)
      if (!dropped[i]) by_culprit[blames[i].culprit_key].push_back(&blames[i]);

    for (const auto& [culprit, group] : by_culprit) {
      const Level level = level_of(group.front()->victim->value, rule_);
      const RunnerShare& top = *group.front()->culprit;
      uint64_t caused = 0, waited = 0;
      for (const Blame* b : group) caused += b->culprit->ns, waited += b->vb.waited_ns;

      nlohmann::json ev = rule_evidence(rule_, "victim_runq_p99_ms", group.front()->victim->value);
      ev["attribution"] = "cpu_runners";
      ev["blame_span_ms"] = window_.span_ns() / 1'000'000;
      nlohmann::json c = runner_json(top, w);
      c["share"] = round4(waited ? double(caused) / double(waited) : 0);
      c["wait_caused_ms"] = caused / 1'000'000;
      if (top.entry != nullptr) {
        c["tid"] = top.entry->tid;
        c["cpu"] = top.entry->cpu;
      }
      ev["culprit"] = std::move(c);
      nlohmann::json victims = nlohmann::json::array();
      std::vector<uint32_t> pids;
      for (const Blame* b : group) {
        // a strong finding lists only the victims above the threshold
        if (level == Level::Strong && level_of(b->victim->value, rule_) != Level::Strong) continue;
        nlohmann::json v = {{"pid", b->victim->key.tgid},
                            {"comm", b->victim->comm},
                            {"runq_p99_ms", round4(b->victim->value)},
                            {"waits", b->victim->count},
                            {"wait_ms", b->vb.waited_ns / 1'000'000},
                            {"cpus", b->vb.cpus},
                            {"culprit_share", round4(b->culprit->share)}};
        nlohmann::json runners = nlohmann::json::array();
        for (size_t i = 0; i < b->vb.runners.size() && i < kRunnersShown; i++)
          runners.push_back(runner_json(b->vb.runners[i], w));
        v["runners"] = std::move(runners);
        victims.push_back(std::move(v));
        pids.push_back(b->victim->key.tgid);
      }
      ev["victims"] = std::move(victims);
      Finding f = make_finding(rule_, culprit, level, std::move(ev));
      f.victims = std::move(pids);
      out.push_back(std::move(f));
    }
  }

  // Victims' culprit: the top CPU consumer of the same window that is not a
  // victim and may be blamed (the probe does not charge waits per CPU).
  void by_top_consumer(const World& w, uint64_t win, const std::vector<Victim>& suffering,
                       std::vector<Finding>& out) {
    if (!cpu_) cpu_.emplace(Resource::Cpu, win);
    cpu_->refresh(w);
    if (suffering.empty()) return;

    // Sorted worst first: the first victim decides the level.
    const Level level = level_of(suffering.front().value, rule_);
    std::vector<Victim> victims;
    for (const Victim& v : suffering)
      if (level == Level::Weak || level_of(v.value, rule_) == Level::Strong) victims.push_back(v);

    // Everyone who waits is excluded, also those only in the hysteresis band.
    std::optional<Culprit> c = cpu_->top(w, victim_keys(suffering));
    if (!c || (c->rate() < kMinCulpritCores && !c->largest)) return;
    const ProcState* s = w.procs->find(c->key);
    if (s == nullptr || !rule_matches(rule_, *s, w)) return;

    nlohmann::json ev = rule_evidence(rule_, "victim_runq_p99_ms", suffering.front().value);
    ev["attribution"] = "top_cpu_consumer";
    ev.update(culprit_evidence(*c));
    ev["culprit_cores"] = round4(c->rate());
    ev["victims"] = victims_evidence(victims, "runq_p99_ms", "waits");
    Finding f = make_finding(rule_, c->key, level, std::move(ev));
    f.victims = victim_pids(victims);
    out.push_back(std::move(f));
  }

  VictimIndex victims_;
  RunqBlameWindow window_;
  std::optional<ConsumerIndex> cpu_;
};

}  // namespace

std::unique_ptr<Detector> make_runq_starvation(const RuleConfig& r) {
  return std::make_unique<RunqStarvationDetector>(r);
}

}  // namespace fp
