#include "detect/tracker.h"

#include <algorithm>

namespace fp {
namespace {

// Which of several findings about one culprit in one tick speaks for it.
int rank(const Finding& f) { return f.immediate ? 3 : f.strong ? 2 : 1; }

bool gone(const ProcessTable& table, const ProcKey& k) {
  const ProcState* s = table.find(k);
  return s == nullptr || s->exited;
}

// An open fault seen again: later victims join it, its evidence is the latest.
void refresh(FaultRecord& r, const Finding& f) {
  for (uint32_t v : f.victims)
    if (r.victims.size() < FaultTracker::kMaxVictims && std::find(r.victims.begin(), r.victims.end(), v) == r.victims.end())
      r.victims.push_back(v);
  for (const ProcKey& k : f.victim_keys)
    if (r.victim_keys.size() < FaultTracker::kMaxVictims &&
        std::find(r.victim_keys.begin(), r.victim_keys.end(), k) == r.victim_keys.end())
      r.victim_keys.push_back(k);
  r.evidence = f.evidence;
  r.group = f.group;  // a group fault's members as they are now: who a group action acts on
}

uint64_t ns_of(std::chrono::nanoseconds d) { return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0; }

}  // namespace

bool FaultTracker::exit_is_the_fault(FaultClass c) {
  return c == FaultClass::Crash || c == FaultClass::CrashLoop || c == FaultClass::OomKill;
}

FaultRecord FaultTracker::resolved(const State& s, uint64_t now_ns, std::string_view reason) const {
  FaultRecord r = s.record;
  r.kind = FaultRecord::Kind::Resolved;
  r.opened_mono_ns = s.record.mono_ns;
  r.mono_ns = now_ns;
  r.evidence = nlohmann::json::object();
  r.evidence["reason"] = std::string(reason);
  // A hardware fault's resolved line still names its device (its pid is 0).
  if (auto it = s.record.evidence.find("device"); it != s.record.evidence.end() && is_hardware_class(s.record.cls))
    r.evidence["device"] = *it;
  return r;
}

bool FaultTracker::adopt(const FaultRecord& open, uint64_t now_ns) {
  if (open.kind != FaultRecord::Kind::Fault) return false;
  auto [it, inserted] = states_.try_emplace(Key{open.rule, open.culprit, open.subject});
  if (!inserted) return false;
  State& s = it->second;
  s.open = true;
  s.cls = open.cls;
  s.last_seen = now_ns;
  s.record = open;
  return true;
}

void FaultTracker::step(const RuleConfig& rule, uint64_t now_ns, const std::vector<Finding>& findings,
                        const ProcessTable& table, std::vector<FaultRecord>& out) {
  using Who = std::pair<ProcKey, std::string>;  // culprit, subject
  std::map<Who, const Finding*> best;
  for (const Finding& f : findings) {
    auto [it, inserted] = best.try_emplace(Who{f.culprit, f.subject}, &f);
    if (!inserted && rank(f) > rank(*it->second)) it->second = &f;
  }
  const uint64_t hold = ns_of(rule.hold);
  const uint64_t clear = ns_of(rule.clear);
  // A kernel error report stays a fact when the process it happened in exits.
  const bool exit_ok = exit_is_the_fault(rule.cls) || blames_no_process(rule.cls);

  auto open = [&](State& s, const ProcKey& k, const Finding& f) {
    s.open = true;
    s.last_seen = now_ns;
    FaultRecord& r = s.record;
    r = FaultRecord{};
    r.kind = FaultRecord::Kind::Fault;
    r.mono_ns = now_ns;
    r.cls = rule.cls;
    r.severity = std::max(rule.severity, f.severity);
    r.rule = rule.name;
    r.culprit = k;
    r.subject = f.subject;
    refresh(r, f);  // evidence, victims (bounded), a group's members
    if (annotate_) annotate_(r);
    out.push_back(r);
  };

  // Faults and pending conditions this rule already tracks.
  for (auto it = states_.lower_bound(Key{rule.name, ProcKey{}, std::string()});
       it != states_.end() && std::get<0>(it->first) == rule.name;) {
    const ProcKey& k = std::get<1>(it->first);
    State& s = it->second;
    auto bit = best.find(Who{k, std::get<2>(it->first)});
    const Finding* f = bit == best.end() ? nullptr : bit->second;
    if (bit != best.end()) best.erase(bit);
    // A group fault goes on while its findings do, whoever of it exits.
    const bool culprit_gone = !exit_ok && gone(table, k) && (f == nullptr || !f->outlives_culprit);

    if (s.open) {
      if (culprit_gone && !exit_ok) {
        out.push_back(resolved(s, now_ns, "process exited"));
        it = states_.erase(it);
        continue;
      }
      if (f != nullptr) {
        s.last_seen = now_ns;
        refresh(s.record, *f);
      } else if (now_ns - std::min(now_ns, s.last_seen) >= clear) {
        out.push_back(resolved(s, now_ns, "cleared"));
        it = states_.erase(it);
        continue;
      }
      ++it;
      continue;
    }
    // Pending: the strong run must go on, and a gone process cannot open a fault.
    if (f == nullptr || rank(*f) < 2 || (culprit_gone && !f->immediate && !exit_ok)) {
      it = states_.erase(it);
      continue;
    }
    if (f->immediate || now_ns - std::min(now_ns, s.pending_since) >= hold) open(s, k, *f);
    ++it;
  }

  // New culprits.
  for (const auto& [who, f] : best) {
    const ProcKey& k = who.first;
    if (rank(*f) < 2) continue;  // weak findings never open a fault
    if (!exit_ok && !f->immediate && !f->outlives_culprit && gone(table, k)) continue;
    State& s = states_[Key{rule.name, k, who.second}];
    s.cls = rule.cls;
    s.pending_since = now_ns;
    if (f->immediate || hold == 0) open(s, k, *f);
  }
}

void FaultTracker::retire(const std::function<bool(const std::string&, FaultClass)>& keep, uint64_t now_ns,
                          std::string_view reason, std::vector<FaultRecord>& out) {
  for (auto it = states_.begin(); it != states_.end();) {
    State& s = it->second;
    if (keep(std::get<0>(it->first), s.cls)) {
      ++it;
      continue;
    }
    if (s.open) out.push_back(resolved(s, now_ns, reason));
    it = states_.erase(it);
  }
}

std::vector<FaultRecord> FaultTracker::open_faults() const {
  std::vector<FaultRecord> out;
  for (const auto& [k, s] : states_) {
    if (!s.open) continue;
    out.push_back(s.record);
    out.back().last_seen_ns = s.last_seen;
  }
  return out;
}

size_t FaultTracker::open_count() const {
  return static_cast<size_t>(std::count_if(states_.begin(), states_.end(), [](const auto& kv) { return kv.second.open; }));
}

}  // namespace fp
