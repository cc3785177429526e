#include "detect/engine.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "detect/detectors.h"

namespace fp {
namespace {

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// The classes an urgent tick is for (the daemon wakes on their events).
bool urgent_class(FaultClass c) {
  return c == FaultClass::Crash || c == FaultClass::CrashLoop || c == FaultClass::OomKill || c == FaultClass::Hang;
}

}  // namespace

std::string container_of_cgroup(std::string_view cgroup) {
  // A run of exactly 64 hex digits, not part of a longer run. The runtimes
  // differ only in what surrounds it (a prefix, a ".scope" suffix, a slash).
  std::string_view found;
  size_t i = 0;
  while (i < cgroup.size()) {
    if (!is_hex(cgroup[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cgroup.size() && is_hex(cgroup[j])) ++j;
    if (j - i == 64) found = cgroup.substr(i, 64);
    i = j;
  }
  return std::string(found);
}

const ProcInfo* trusted_info(const ProcState& s, ProcInfoSource* infos) {
  if (infos == nullptr) return nullptr;
  const ProcInfo& info = infos->info(s.key);
  if (!info.found) return nullptr;
  if (s.exited && !s.comm.empty() && info.comm != s.comm) return nullptr;
  return &info;
}

Engine::Engine(Config cfg, HostInfo host, ProcInfoSource& infos, uint32_t self_tgid)
    : cfg_(std::move(cfg)),
      host_(host),
      infos_(infos),
      self_tgid_(self_tgid),
      protection_(cfg_.protected_comms),
      table_(host.page_size),
      tracker_([this](FaultRecord& r) { annotate(r); }) {
  build_detectors();
}

void Engine::build_detectors() {
  detectors_.clear();
  for (const RuleConfig& r : cfg_.rules) {
    if (!r.enabled) continue;
    if (auto d = make_detector(r)) detectors_.push_back(std::move(d));
  }
  // The event-driven rules first: an urgent tick (a crash woke the daemon)
  // decides them before the threshold detectors' work.
  std::stable_partition(detectors_.begin(), detectors_.end(),
                        [](const std::unique_ptr<Detector>& d) { return urgent_class(d->rule().cls); });
}

size_t Engine::adopt_open_faults(const std::vector<FaultRecord>& open, uint64_t now_ns) {
  size_t n = 0;
  for (const FaultRecord& r : open) {
    bool known = false;
    for (const RuleConfig& rule : cfg_.rules)
      if (rule.enabled && rule.name == r.rule && rule.cls == r.cls) known = true;
    if (known && tracker_.adopt(r, now_ns)) n++;
  }
  return n;
}

void Engine::reload(const Config& cfg) {
  // Pending states and open faults are keyed by rule name; one whose rule
  // is gone, disabled or now of another class is over.
  auto keep = [&cfg](const std::string& name, FaultClass cls) {
    return std::any_of(cfg.rules.begin(), cfg.rules.end(), [&](const RuleConfig& r) {
      return r.enabled && r.name == name && r.cls == cls;
    });
  };
  tracker_.retire(keep, 0, "rule removed", deferred_);
  cfg_ = cfg;
  protection_.set_entries(cfg_.protected_comms);
  build_detectors();
}

void Engine::annotate(FaultRecord& r) const {
  const ProcState* s = table_.find(r.culprit);
  bool cgroup_known = false;
  if (s != nullptr) {
    r.comm = s->comm;
    if (const ProcInfo* info = trusted_info(*s, &infos_)) {
      // A live process's /proc name is current (prctl renames); the probe
      // learns names at fork, exec and exit only. But /proc was read when the
      // process was first asked about: after an exec the probe's name is the
      // newer one.
      const bool exec_after_read = (s->flags & FP_PROC_EXEC_SEEN) != 0 && !r.comm.empty();
      if (r.comm.empty() || (!s->exited && !info->comm.empty() && !exec_after_read)) r.comm = info->comm;
      r.cgroup = info->cgroup;
      cgroup_known = true;
    }
  }
  // A group fault outlives the process it names, which may have exited
  // before /proc was read (a bomb's origin lives milliseconds): its cgroup is
  // then that of the group's oldest live member with one (fork keeps the
  // cgroup), said in the evidence. A policy matching the cgroup still applies.
  if (!cgroup_known) {
    for (const ProcKey& k : r.group) {
      const ProcState* m = table_.find(k);
      if (m == nullptr || m->exited) continue;
      if (const ProcInfo* info = trusted_info(*m, &infos_)) {
        r.cgroup = info->cgroup;
        if (r.evidence.is_object()) r.evidence["cgroup_of"] = k.tgid;
        break;
      }
    }
  }
  SystemdUnit unit = systemd_unit_of(r.cgroup);
  r.unit = unit.name;
  r.unit_user = unit.user;
  r.container = container_of_cgroup(r.cgroup);
  // Evasion is visible: a culprit that named itself like a protected
  // process says so in its fault.
  if (r.kind == FaultRecord::Kind::Fault && r.culprit.tgid != 0 && r.evidence.is_object()) {
    const bool alive = s != nullptr && !s->exited;
    if (std::string why = protection_.pretender(r.culprit, r.comm, alive); !why.empty())
      r.evidence["not_protected"] = why;
  }
}

bool Engine::blameable(const ProcKey& k, const World& w) const {
  if (k.tgid == 0 || k.tgid == 1 || k.tgid == self_tgid_) return false;
  const ProcState* s = table_.find(k);
  return s == nullptr || may_blame(*s, w);
}

std::vector<FaultRecord> Engine::tick(uint64_t now_ns, const std::vector<SlotChange>& changed,
                                      const EventBatch& events,
                                      const std::function<void(const FaultRecord&)>& decided) {
  for (const SlotChange& c : changed) {
    const fp_proc* p = c.proc;
    if (p == nullptr) continue;
    if (c.slot >= slot_owner_.size()) slot_owner_.resize(size_t(c.slot) + 1);
    ProcKey& owner = slot_owner_[c.slot];
    if (owner.tgid != 0 && (p->tgid == 0 || owner != key_of(*p))) {
      // The slot's process is gone. Its exit event, if it was not lost,
      // comes in `events` and adds the exit code.
      table_.lost(owner);
    }
    owner = p->tgid == 0 ? ProcKey{} : key_of(*p);  // a freed slot holds no one
    if (p->tgid != 0) table_.update(now_ns, *p);
  }
  for (const ExitRecord& e : events.exits) table_.exited(now_ns, e);

  World w;
  w.now_ns = now_ns;
  w.tick_ns = static_cast<uint64_t>(std::max<int64_t>(cfg_.sample_interval.count(), 1));
  w.procs = &table_;
  w.events = &events;
  w.infos = &infos_;
  w.host = host_;
  w.self_tgid = self_tgid_;
  w.protection = &protection_;
  w.runq_blame = runq_blame_;
  w.memory_budget = memory_budget_;
  w.cpu_quota = cpu_quota_;
  w.pressure = pressure_;
  w.cgroup_pressure = cgroup_pressure_;
  w.logs = logs_;
  w.net_endpoints = net_endpoints_;
  w.net_drop_reasons = net_drop_reasons_;
  w.error_detectors = error_detectors_;

  std::vector<FaultRecord> out = std::move(deferred_);
  deferred_.clear();
  for (FaultRecord& r : out) r.mono_ns = now_ns;
  size_t told = 0;
  auto tell = [&] {
    if (decided)
      for (; told < out.size(); ++told) decided(out[told]);
  };
  tell();

  for (auto& d : detectors_) {
    findings_.clear();
    d->evaluate(w, findings_);
    // Whatever a detector says, these are never culprits (hardware findings
    // blame a device: their culprit is {0, 0} by design; a kernel error
    // names the process it happened in, a kernel thread or nobody, blaming none).
    if (!blames_no_process(d->rule().cls))
      std::erase_if(findings_, [&](const Finding& f) { return !blameable(f.culprit, w); });
    tracker_.step(d->rule(), now_ns, findings_, table_, out);
    tell();
  }
  table_.end_tick(now_ns);
  return out;
}

}  // namespace fp
