#include "detect/fork_lineage.h"

#include <algorithm>

namespace fp {
namespace {

// A lineage deeper than this is walked no further (a bomb's chain of
// generations: its members were marked on the way down, at their birth).
constexpr int kMaxWalk = 256;
void insert_sorted(std::vector<uint64_t>& v, uint64_t t) {
  if (v.empty() || v.back() <= t)
    v.push_back(t);
  else
    v.insert(std::upper_bound(v.begin(), v.end(), t), t);
}

}  // namespace

ForkLineage::Family& ForkLineage::family(const ProcKey& origin) {
  auto [it, fresh] = families_.try_emplace(origin);
  if (fresh) it->second.since_ns = origin.start_ns;
  return it->second;
}

const ForkLineage::Entry* ForkLineage::find(const ProcKey& k) const {
  auto it = entries_.find(k);
  return it == entries_.end() ? nullptr : &it->second;
}

ProcKey ForkLineage::family_of(const ProcKey& k) const {
  const Entry* e = find(k);
  return e != nullptr ? e->family : k;
}

const ForkLineage::Entry* ForkLineage::parent_of(const ProcState& s) const {
  if (s.ppid == 0) return nullptr;
  auto pid = by_pid_.find(s.ppid);
  if (pid == by_pid_.end()) return nullptr;
  const Entry* p = find(pid->second);
  // A parent younger than the child is a later owner of the pid.
  if (p == nullptr || p->key.start_ns > s.key.start_ns) return nullptr;
  return p;
}

void ForkLineage::add_spawn(const ProcKey& parent, const ProcKey& child) {
  auto& v = spawns_[parent];
  const std::pair<uint64_t, uint32_t> item{child.start_ns, child.tgid};
  if (v.empty() || v.back() < item) {
    v.push_back(item);
    return;
  }
  auto it = std::lower_bound(v.begin(), v.end(), item);
  if (it == v.end() || *it != item) v.insert(it, item);  // a child seen again is counted once
}

void ForkLineage::observe(const ProcState& s, uint64_t now_ns) {
  const bool exec_now = s.now.execs > 0;
  auto it = entries_.find(s.key);
  if (it == entries_.end()) {
    const Entry* parent = parent_of(s);
    if (parent != nullptr && exec_now) add_spawn(parent->key, s.key);
    const bool replica = parent != nullptr && !exec_now;
    if (!replica && s.now.forks == 0) return;  // neither a forker nor a replica: nothing to remember
    Entry e;
    e.key = s.key;
    e.exec_seen = exec_now;
    if (parent != nullptr) e.parent = parent->key;
    if (replica) {
      e.family = parent->family;
      e.gen = parent->gen + 1;
      e.in_group = parent->in_group || parent->qualified;
    } else {
      e.family = s.key;
    }
    if (s.exited) {
      e.exited_ns = now_ns;
      exited_.emplace_back(now_ns, s.key);
    }
    auto pid = by_pid_.find(s.key.tgid);
    if (pid == by_pid_.end() || pid->second.start_ns <= s.key.start_ns) by_pid_[s.key.tgid] = s.key;
    Family& fam = family(e.family);
    fam.members.insert(s.key);
    if (replica) {
      insert_sorted(fam.births, s.key.start_ns);
      fam.max_gen = std::max(fam.max_gen, e.gen);
    }
    if (e.in_group) fam.active_ns = now_ns;
    entries_.emplace(s.key, e);
    return;
  }
  Entry& e = it->second;
  if (exec_now && !e.exec_seen) {
    // It exec'd since: a spawn of its parent, and the origin of its own family.
    e.exec_seen = true;
    if (e.family != e.key) {
      if (auto f = families_.find(e.family); f != families_.end()) {
        f->second.members.erase(e.key);
        auto& b = f->second.births;  // it was no replica after all
        if (auto at = std::lower_bound(b.begin(), b.end(), e.key.start_ns); at != b.end() && *at == e.key.start_ns)
          b.erase(at);
      }
      e.family = e.key;
      e.gen = 0;
      e.in_group = e.qualified;
      family(e.key).members.insert(e.key);
      if (e.parent.tgid != 0) add_spawn(e.parent, e.key);
    }
  }
  if (s.exited && e.exited_ns == 0) {
    e.exited_ns = now_ns;
    exited_.emplace_back(now_ns, s.key);
  }
}

void ForkLineage::erase(const ProcKey& k) {
  auto it = entries_.find(k);
  if (it == entries_.end()) return;
  if (auto f = families_.find(it->second.family); f != families_.end()) {
    f->second.members.erase(k);
    if (f->second.members.empty()) families_.erase(f);
  }
  if (auto pid = by_pid_.find(k.tgid); pid != by_pid_.end() && pid->second == k) by_pid_.erase(pid);
  spawns_.erase(k);
  entries_.erase(it);
}

void ForkLineage::expire(const std::vector<ProcKey>& removed, uint64_t now_ns) {
  for (const ProcKey& k : removed) {
    auto it = entries_.find(k);
    if (it != entries_.end() && it->second.exited_ns == 0) {
      it->second.exited_ns = now_ns;
      exited_.emplace_back(now_ns, k);
    }
  }
  while (!exited_.empty() && exited_.front().first + keep_ns_ <= now_ns) {
    erase(exited_.front().second);
    exited_.pop_front();
  }
  // Spawn times older than any window (a parent's list is trimmed when it spawns again).
  const uint64_t horizon = now_ns > keep_ns_ ? now_ns - keep_ns_ : 0;
  if (now_ns >= next_trim_ns_) {
    next_trim_ns_ = now_ns + keep_ns_;
    for (auto it = spawns_.begin(); it != spawns_.end();) {
      auto& v = it->second;
      v.erase(v.begin(), std::lower_bound(v.begin(), v.end(), std::pair<uint64_t, uint32_t>{horizon, 0}));
      it = v.empty() ? spawns_.erase(it) : std::next(it);
    }
    for (auto& [origin, fam] : families_)
      fam.births.erase(fam.births.begin(), std::lower_bound(fam.births.begin(), fam.births.end(), horizon));
  }
}

uint64_t ForkLineage::spawns_since(const ProcKey& parent, uint64_t since_ns) const {
  auto it = spawns_.find(parent);
  if (it == spawns_.end()) return 0;
  const auto& v = it->second;
  return static_cast<uint64_t>(v.end() - std::lower_bound(v.begin(), v.end(), std::pair<uint64_t, uint32_t>{since_ns, 0}));
}

void ForkLineage::qualify(const ProcKey& k, uint64_t now_ns) {
  auto it = entries_.find(k);
  if (it == entries_.end()) return;
  it->second.qualified = true;
  it->second.in_group = true;
  Family& fam = family(it->second.family);
  fam.active_ns = now_ns;
  fam.min_qualified_gen = std::min(fam.min_qualified_gen, it->second.gen);
}

bool ForkLineage::member(const ProcKey& k) {
  auto it = entries_.find(k);
  return it != entries_.end() && resolve_in_group(it->second);
}

bool ForkLineage::resolve_in_group(Entry& e) {
  if (e.in_group) return true;
  std::vector<Entry*> path{&e};
  ProcKey p = e.parent;
  for (int i = 0; i < kMaxWalk && p.tgid != 0; ++i) {
    auto it = entries_.find(p);
    if (it == entries_.end()) break;
    Entry& a = it->second;
    if (a.family != e.family) break;  // above the family's origin
    if (a.in_group) {
      for (Entry* x : path) x->in_group = true;
      return true;
    }
    path.push_back(&a);
    p = a.parent;
  }
  return false;
}

std::vector<ProcKey> ForkLineage::active_families(uint64_t now_ns, uint64_t within_ns) const {
  std::vector<ProcKey> out;
  for (const auto& [origin, fam] : families_)
    if (fam.active_ns != 0 && fam.active_ns + within_ns >= now_ns) out.push_back(origin);
  std::sort(out.begin(), out.end());
  return out;
}

double ForkLineage::birth_rate(const ProcKey& origin, uint64_t now_ns, uint64_t window_ns,
                               uint64_t min_span_ns) const {
  auto f = families_.find(origin);
  if (f == families_.end() || f->second.births.empty()) return 0;
  const auto& b = f->second.births;
  const uint64_t t0 = now_ns > window_ns ? now_ns - window_ns : 0;
  const auto n = static_cast<double>(b.end() - std::lower_bound(b.begin(), b.end(), t0));
  const uint64_t age = now_ns > f->second.since_ns ? now_ns - f->second.since_ns : 0;
  const uint64_t span = std::max(std::min(age, window_ns), min_span_ns);
  return span == 0 ? 0 : n * 1e9 / static_cast<double>(span);
}

ForkLineage::Group ForkLineage::group_of(const ProcKey& family) {
  Group g;
  auto f = families_.find(family);
  if (f == families_.end()) return g;
  for (const ProcKey& k : f->second.members) {
    auto it = entries_.find(k);
    if (it == entries_.end() || !resolve_in_group(it->second)) continue;
    const Entry& e = it->second;
    g.last_birth_ns = std::max(g.last_birth_ns, e.key.start_ns);
    if (e.exited_ns == 0) g.live.push_back(&e);
  }
  std::sort(g.live.begin(), g.live.end(), [](const Entry* a, const Entry* b) {
    return a->key.start_ns != b->key.start_ns ? a->key.start_ns < b->key.start_ns : a->key.tgid < b->key.tgid;
  });
  const Family& fam = f->second;
  if (fam.min_qualified_gen <= fam.max_gen) g.generations = fam.max_gen - fam.min_qualified_gen + 1;
  return g;
}

}  // namespace fp
