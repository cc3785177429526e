// host_pressure: the host as a whole is short of a resource -- its PSI stall
// share (some/full avg10, %) or its utilisation (cpu busy %, memory used %,
// io MB/s) is above the rule's threshold. The culprit is the process that
// used most of that resource in the rule's window (CPU time; for memory the
// pages it brought in, faults plus pages read -- a leak faults its growth, a
// thrasher reads back what reclaim took, while net RSS growth misses the
// thrasher, whose RSS stays at its cgroup's limit; IO bytes); the victims are the processes
// that stalled most on it (run-queue waits; direct reclaim and D-state; D-state),
// the culprit left out. A culprit stays named while it still uses at least
// half as much as the largest consumer, so a fault does not flap between two
// hogs of the same size. A rule that names a cgroup (v2) reads that group's
// PSI instead, and takes its culprit and victims among the group's members.
#include <algorithm>
#include <set>

#include "detect/cgroup_pressure.h"
#include "detect/detectors.h"
#include "detect/engine.h"
#include "detect/host_pressure.h"
#include "detect/locate.h"
#include "detect/threshold.h"

namespace fp {
namespace {

using PR = PressureRule;

constexpr double kMinVictimShare = 0.01;  // stalled 1 % of the window: felt it
constexpr size_t kMaxVictims = 8;
// A group's culprit is its largest consumer: the host's top consumers are
// passed over until one is a member, at most this many.
constexpr size_t kMaxCulpritSkips = 64;

PsiResource psi_of(PR::Resource r) {
  switch (r) {
    case PR::Resource::Cpu: return PsiResource::Cpu;
    case PR::Resource::Memory: return PsiResource::Memory;
    case PR::Resource::Io: return PsiResource::Io;
  }
  return PsiResource::Memory;
}

const char* kind_name(PR::Kind k) {
  switch (k) {
    case PR::Kind::Some: return "some";
    case PR::Kind::Full: return "full";
    case PR::Kind::Used: return "used";
  }
  return "?";
}

// The stall a process felt on the resource, as a share of the window.
double stall_share(PR::Resource r, const WindowDelta& d, uint64_t win) {
  const Metrics& m = d.delta;
  const uint64_t ns = r == PR::Resource::Cpu      ? m.runq_wait_ns
                      : r == PR::Resource::Memory ? m.reclaim_ns + m.dstate_ns
                                                  : m.dstate_ns;
  return share_of_span(ns, win);
}

class HostPressureDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const PR& pr = rule_.pressure;
    if (!primary_) {
      primary_.emplace(pr.resource == PR::Resource::Cpu      ? Resource::Cpu
                       : pr.resource == PR::Resource::Memory ? Resource::MemoryChurn
                                                             : Resource::IoBytes,
                       win);
    }
    // Every tick, so the windows stay current whatever the pressure.
    primary_->refresh(w);
    std::vector<Victim> stalled = victims_.refresh(w, win, [&](const ProcState& s, const WindowDelta& d) {
      std::optional<Victim> v;
      const double share = stall_share(pr.resource, d, win);
      if (share >= kMinVictimShare) v = Victim{s.key, s.comm, round4(share), 0};
      return v;
    });
    const HostPressure* src = source(w);

    std::optional<double> value = metric(src);
    if (!value) return;
    const Level level = level_of(*value, rule_);
    if (level == Level::None) {
      last_culprit_.reset();
      return;
    }
    std::optional<Culprit> c = culprit(w);
    if (!c) return;
    const ProcState* s = w.procs->find(c->key);
    if (s == nullptr || !rule_matches(rule_, *s, w)) return;
    last_culprit_ = c->key;

    std::erase_if(stalled, [&](const Victim& v) { return v.key == c->key || !member(w, v.key); });
    if (stalled.size() > kMaxVictims) stalled.resize(kMaxVictims);
    nlohmann::json ev = rule_evidence(rule_, metric_name(), *value);
    ev["pressure_resource"] = psi_resource_name(psi_of(pr.resource));
    ev["pressure_kind"] = kind_name(pr.kind);
    ev["psi"] = pressure_json(src->of(psi_of(pr.resource)));
    if (!pr.cgroup.empty()) ev["pressure_cgroup"] = pr.cgroup;
    if (src->util)
      ev["util"] = {{"cpu_pct", round4(src->util->cpu_pct)},
                    {"mem_used_pct", round4(src->util->mem_used_pct)},
                    {"io_mbps", round4(src->util->io_bps / kBytesPerMB)}};
    ev.update(culprit_evidence(*c));
    ev["victims"] = victims_evidence(stalled, "stall_share");
    Finding f = make_finding(rule_, c->key, level, std::move(ev));
    f.victims = victim_pids(stalled);
    out.push_back(std::move(f));
  }

 private:
  // "psi_memory_some_avg10" (%), "cpu_used_pct", "memory_used_pct", "io_mbps".
  std::string metric_name() const {
    const PR& pr = rule_.pressure;
    const std::string res = psi_resource_name(psi_of(pr.resource));
    if (pr.kind != PR::Kind::Used) return "psi_" + res + "_" + kind_name(pr.kind) + "_avg10";
    return pr.resource == PR::Resource::Io ? "io_mbps" : res + "_used_pct";
  }

  // The host's pressure, or the rule's group's.
  const HostPressure* source(const World& w) const {
    if (rule_.pressure.cgroup.empty()) return w.pressure;
    return w.cgroup_pressure != nullptr ? w.cgroup_pressure->of(rule_.pressure.cgroup) : nullptr;
  }

  // A member of the rule's group (every process when it names none). A
  // process whose /proc cannot be vouched for is nobody's member.
  bool member(const World& w, const ProcKey& k) const {
    if (rule_.pressure.cgroup.empty()) return true;
    const ProcState* s = w.procs->find(k);
    const ProcInfo* info = s != nullptr ? trusted_info(*s, w.infos) : nullptr;
    return info != nullptr && in_cgroup(info->cgroup, rule_.pressure.cgroup);
  }

  std::optional<double> metric(const HostPressure* src) const {
    if (src == nullptr) return std::nullopt;
    const PR& pr = rule_.pressure;
    if (pr.kind == PR::Kind::Used) {
      if (!src->util) return std::nullopt;
      const HostUtil& u = *src->util;
      return pr.resource == PR::Resource::Cpu      ? u.cpu_pct
             : pr.resource == PR::Resource::Memory ? u.mem_used_pct
                                                   : u.io_bps / kBytesPerMB;
    }
    const ResourcePressure& p = src->of(psi_of(pr.resource));
    if (!p.ok) return std::nullopt;
    if (pr.kind == PR::Kind::Some) return p.psi.some.avg10;
    if (!p.psi.full) return std::nullopt;
    return p.psi.full->avg10;
  }

  // The largest consumer (of the group's members), unless the one named
  // before still uses half as much.
  std::optional<Culprit> culprit(const World& w) const {
    std::optional<Culprit> c = primary_->top(w);
    if (!rule_.pressure.cgroup.empty()) {
      std::set<ProcKey> passed;
      while (c && !member(w, c->key) && passed.size() < kMaxCulpritSkips) {
        passed.insert(c->key);
        c = primary_->top(w, passed);
      }
      if (c && !member(w, c->key)) return std::nullopt;
      return c;  // no hysteresis between members: the group is the fault's subject
    }
    if (!c || !last_culprit_ || c->key == *last_culprit_) return c;
    if (c->runner_up && c->runner_up->key == *last_culprit_ && c->runner_up->blameable &&
        c->runner_up->amount * 2 >= c->amount) {
      std::optional<Culprit> kept = primary_->top(w, {c->key});
      if (kept && kept->key == *last_culprit_) return kept;
    }
    return c;
  }

  std::optional<ConsumerIndex> primary_;
  VictimIndex victims_;
  std::optional<ProcKey> last_culprit_;
};

}  // namespace

std::unique_ptr<Detector> make_host_pressure(const RuleConfig& r) {
  return std::make_unique<HostPressureDetector>(r);
}

}  // namespace fp
