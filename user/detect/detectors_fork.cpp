// fork_bomb: forks per second of a forking group, blamed on the group's
// originating process or, once that is gone, its oldest live member.
//
// Forks are counted on the parent, so a process's own fork counter is the
// signal even when its children live for microseconds (the table keeps an
// exited process one tick, enough to count what it forked in its last tick).
// Only forks whose child did not exec count: a shell loop running /bin/true,
// make running the compiler or a CI runner starting jobs spawn programs,
// they do not replicate (ForkLineage counts the spawns).
//
// Trees: the fastest forker and its ancestors that fork fast themselves.
// Groups: the trees whose roots are replicas of one family (ForkLineage). A
// bomb whose generations reparent to init is many short-lived trees of one
// family; their rates add up, and it is one fault. A family whose members
// keep breeding over generations also opens the fault by its size (the
// rule's `count`): a bomb held by a pids limit forks slowly (bash retries a
// failed fork after 1, 2, 4, 8 s) but stays at the limit.
#include <algorithm>
#include <map>
#include <set>

#include "detect/detectors.h"
#include "detect/fork_lineage.h"
#include "detect/threshold.h"

namespace fp {
namespace {

// An ancestor belongs to the forking tree while it forks at >= 10 % of the
// threshold itself, and more than once: the shell (or the launcher) that
// started a bomb forked once and is not it. The count matters for a young
// launcher: one fork over its short life reads as a fast rate, it was named
// root until that rate decayed (~100 ms), and then the root moved to the bomb
// and the hold started again (faultgen's supervisor: +100 ms latency).
constexpr double kRootMinShareOfThreshold = 0.1;
constexpr uint64_t kRootMinForks = 2;
// A young process's rate is taken over its life, but over no less than this
// (nor less than a tick, nor more than the window): at 100 Hz sampling one or
// two forks in a process's first 10 ms would read as 100-200/s, and a few
// young shells of a parallel build would add up to a fork bomb. With the
// default threshold this asks for 10 forks before a young process can reach
// it, which is what a 100 ms tick (the default sampling) always asked.
constexpr uint64_t kMinRateSpanNs = 100'000'000;
uint64_t min_rate_span_ns(uint64_t window_ns, uint64_t tick_ns) {
  return std::min(window_ns, std::max(tick_ns, kMinRateSpanNs));
}
constexpr size_t kEvidenceMembers = 10;
// A group opens by its size only when its lineage is this deep (a prefork
// server's workers are one generation below their master, a worker pool's
// helpers two; a bomb's lineage deepens with every round) and a member was
// born in the last kBreedingNs (it still replicates).
constexpr uint32_t kMinGenerations = 4;
constexpr uint64_t kBreedingNs = 10'000'000'000ull;
// Exited members and spawns are kept at least this long: a child may reach
// the table a tick after its parent's exit was seen.
constexpr uint64_t kMinLineageKeepNs = 2'000'000'000ull;
// Bounds the member list a finding carries (a group action finds the rest in /proc).
constexpr size_t kMaxGroupKeys = 4096;

struct Forker {
  const ProcState* s = nullptr;
  uint64_t forks = 0;  // forks in the window whose child did not exec
  double rate = 0;     // own such forks per second
};

// The fastest forker and its ancestors that fork fast themselves, under the
// highest live one that may be blamed.
struct Tree {
  const ProcState* root = nullptr;
  std::vector<const Forker*> members;  // forkers, fastest first
};

// One family's forking at this tick.
struct GroupData {
  std::vector<Tree> trees;
  std::vector<const Forker*> forkers;  // its forkers (in its trees or not)
  double rate = 0;                     // their rates added up
  uint64_t forks = 0;
};

uint64_t since(uint64_t now_ns, uint64_t span_ns) { return now_ns > span_ns ? now_ns - span_ns : 0; }

class ForkBombDetector final : public RuleDetector {
 public:
  explicit ForkBombDetector(const RuleConfig& r)
      : RuleDetector(r), lineage_(std::max(window_ns(r), kMinLineageKeepNs)) {}

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const ProcessTable& t = *w.procs;
    for (const ProcKey& k : t.removed()) forking_.erase(k);
    lineage_.expire(t.removed(), w.now_ns);
    // Who forked in the window: looked at again only when their window may
    // have changed. Their rates (a young process's span grows) are taken anew
    // at every tick; there are few of them.
    std::vector<const ProcState*> changed;
    t.for_each_dirty(win, w.now_ns, !primed_, [&](const ProcState& s) {
      changed.push_back(&s);
      bool forks = false;
      if (!idle_in_window(s, w.now_ns, win)) {
        WindowDelta d = t.window(s, w.now_ns, win);
        t.schedule_window(win, s.key, d.stable_until_ns);
        forks = d.delta.forks != 0;
      }
      if (forks)
        forking_.insert(s.key);
      else
        forking_.erase(s.key);
    });
    primed_ = true;
    // Parents before their children: a child joins the family its parent has.
    std::sort(changed.begin(), changed.end(), [](const ProcState* a, const ProcState* b) {
      return a->key.start_ns != b->key.start_ns ? a->key.start_ns < b->key.start_ns : a->key.tgid < b->key.tgid;
    });
    for (const ProcState* s : changed) lineage_.observe(*s, w.now_ns);

    std::map<ProcKey, Forker> forkers = rate_forkers(w, win);
    const double min_rate = kRootMinShareOfThreshold * rule_.threshold;
    for (const auto& [k, f] : forkers)
      if (f.forks >= kRootMinForks && f.rate >= min_rate && may_blame(*f.s, w)) lineage_.qualify(k, w.now_ns);

    // Groups by family: a tree goes with its root's family, a forker with its
    // tree's (a process that exited this tick is in no tree: its own family).
    std::map<ProcKey, GroupData> groups;
    std::map<ProcKey, ProcKey> group_of;  // forker -> family
    for (Tree& tr : build_trees(w, forkers)) {
      const ProcKey fam = lineage_.family_of(tr.root->key);
      for (const Forker* f : tr.members) group_of[f->s->key] = fam;
      groups[fam].trees.push_back(std::move(tr));
    }
    for (const auto& [k, f] : forkers) {
      auto g = group_of.find(k);
      GroupData& gd = groups[g != group_of.end() ? g->second : lineage_.family_of(k)];
      gd.rate += f.rate;
      gd.forks += f.forks;
      gd.forkers.push_back(&f);
    }
    for (const ProcKey& fam : lineage_.active_families(w.now_ns, kBreedingNs)) groups[fam];
    for (auto& [family, gd] : groups) evaluate_group(w, family, gd, forkers, out);

    const uint64_t forget = static_cast<uint64_t>(rule_.clear.count()) + win;
    std::erase_if(states_, [&](const auto& kv) { return kv.second.last_seen_ns + forget < w.now_ns; });
  }

 private:
  // Who the group's fault names, kept while the group forks: the tracker
  // keys a fault by its culprit, and a bomb's members come and go.
  struct GroupState {
    ProcKey culprit;
    bool matches = false;  // the rule's match, checked when it was chosen (it may be gone since)
    uint64_t named_ns = 0;     // when the culprit was named
    uint64_t last_seen_ns = 0;
  };

  std::map<ProcKey, Forker> rate_forkers(const World& w, uint64_t win) const {
    const ProcessTable& t = *w.procs;
    std::map<ProcKey, Forker> forkers;
    const uint64_t min_span = min_rate_span_ns(win, w.tick_ns);
    for (const ProcKey& k : forking_) {
      const ProcState* s = t.find(k);
      if (s == nullptr) continue;
      WindowDelta d = t.window(*s, w.now_ns, win);
      // A window's counter delta starts at its base point, up to a tick
      // before its span: children born that tick count as its spawns too.
      const uint64_t spawned = lineage_.spawns_since(k, since(w.now_ns, d.span_ns + w.tick_ns));
      if (d.delta.forks <= spawned) continue;
      const uint64_t clones = d.delta.forks - spawned;
      forkers[s->key] = Forker{s, clones, per_sec(clones, std::max(d.span_ns, min_span))};
    }
    return forkers;
  }

  std::vector<Tree> build_trees(const World& w, const std::map<ProcKey, Forker>& forkers) const {
    std::vector<Tree> trees;
    if (forkers.empty()) return trees;
    std::vector<const Forker*> by_rate;
    for (const auto& [k, f] : forkers) by_rate.push_back(&f);
    std::stable_sort(by_rate.begin(), by_rate.end(),
                     [](const Forker* a, const Forker* b) { return a->rate > b->rate; });

    // Each forker's ancestor keys, to collect trees.
    std::map<ProcKey, std::set<ProcKey>> ancestors_of;
    for (const auto& [k, f] : forkers) {
      std::set<ProcKey>& a = ancestors_of[k];
      for (const ProcState* p : w.procs->ancestors(*f.s)) a.insert(p->key);
    }

    // The fastest forker not yet in a tree names the next tree; usually there is one.
    std::set<ProcKey> assigned;
    for (const Forker* top : by_rate) {
      if (assigned.count(top->s->key) != 0) continue;
      const ProcState* root = find_root(w, *top, forkers);
      if (root == nullptr) {
        assigned.insert(top->s->key);
        continue;
      }
      Tree tr;
      tr.root = root;
      for (const Forker* f : by_rate) {
        if (assigned.count(f->s->key) != 0) continue;  // counted in an earlier tree
        if (f->s->key != root->key && ancestors_of[f->s->key].count(root->key) == 0) continue;
        tr.members.push_back(f);
        assigned.insert(f->s->key);
      }
      trees.push_back(std::move(tr));
    }
    return trees;
  }

  // Walks up from the fastest forker while the ancestor forks fast enough itself
  // and may be blamed. The root is the highest live, blameable process on that
  // path (a parent that exited this tick cannot be acted on); null if none is.
  const ProcState* find_root(const World& w, const Forker& top, const std::map<ProcKey, Forker>& forkers) const {
    std::vector<const ProcState*> path{top.s};
    const double min_rate = kRootMinShareOfThreshold * rule_.threshold;
    for (const ProcState* a : w.procs->ancestors(*top.s)) {
      auto it = forkers.find(a->key);
      if (it == forkers.end() || it->second.rate < min_rate || it->second.forks < kRootMinForks || !may_blame(*a, w))
        break;
      path.push_back(a);
    }
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
      if (!(*it)->exited && may_blame(**it, w)) return *it;
    }
    return nullptr;
  }

  void evaluate_group(const World& w, const ProcKey& family, const GroupData& gd,
                      const std::map<ProcKey, Forker>& forkers, std::vector<Finding>& out) {
    const ProcessTable& t = *w.procs;
    const std::vector<Tree>& trees = gd.trees;
    // Two counts of one thing, forks whose child did not exec: the forkers'
    // own counters (a child that lived microseconds was never seen) and the
    // replicas born into the family (a parent that exited is counted only
    // the one tick the table keeps it). Either may fall short; the larger holds.
    const double births =
        lineage_.birth_rate(family, w.now_ns, window_ns(rule_), min_rate_span_ns(window_ns(rule_), w.tick_ns));
    const double rate = std::max(gd.rate, births);
    // The group's live members that may be acted on: the family's group and the trees' forkers.
    ForkLineage::Group g = lineage_.group_of(family);
    std::vector<const ProcState*> members;
    std::set<ProcKey> listed;
    auto add = [&](const ProcState* s) {
      if (s != nullptr && !s->exited && may_blame(*s, w) && listed.insert(s->key).second) members.push_back(s);
    };
    for (const ForkLineage::Entry* e : g.live) add(t.find(e->key));
    for (const Forker* f : gd.forkers)
      if (lineage_.member(f->s->key)) add(f->s);  // not a launcher that forked once

    const bool breeding = g.last_birth_ns != 0 && g.last_birth_ns + kBreedingNs >= w.now_ns;
    const bool populous = rule_.count > 0 && g.generations >= kMinGenerations && breeding;
    Level level = level_of(rate, rule_);
    bool by_size = false;
    if (populous && members.size() >= rule_.count) {
      by_size = level != Level::Strong;
      level = Level::Strong;
    } else if (populous && level == Level::None && members.size() * 2 >= rule_.count) {
      level = Level::Weak;
    }
    if (level == Level::None) return;

    GroupState& st = states_[family];
    const ProcState* preferred = pick_culprit(trees, members, gd.forkers);
    if (const ProcState* next = rename(w, st, trees, preferred, listed)) {
      st.culprit = next->key;
      st.named_ns = w.now_ns;
      st.matches = rule_matches(rule_, *next, w);
    }
    if (st.culprit.tgid == 0) return;
    // Its names and cgroup read while it lives, and kept (the cache keeps
    // what is asked for every tick): the fault names it after it exits.
    if (w.infos != nullptr) (void)w.infos->info(st.culprit);
    const ProcState* named = t.find(st.culprit);
    const bool named_alive = named != nullptr && !named->exited;
    st.last_seen_ns = w.now_ns;
    if (!st.matches) return;

    nlohmann::json ev = rule_evidence(rule_, "tree_forks_per_s", rate);
    ev["tree_forks"] = gd.forks;
    auto own = forkers.find(st.culprit);
    ev["root_forks_per_s"] = round4(own != forkers.end() ? own->second.rate : 0);
    std::vector<const Forker*> fastest = gd.forkers;
    std::stable_sort(fastest.begin(), fastest.end(), [](const Forker* a, const Forker* b) { return a->rate > b->rate; });
    if (!fastest.empty()) {
      const Forker* top = fastest.front();
      ev["top_forker"] = {{"pid", top->s->key.tgid}, {"comm", top->s->comm}, {"forks_per_s", round4(top->rate)}};
    }
    ev["forking_processes"] = fastest.size();
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 0; i < fastest.size() && i < kEvidenceMembers; ++i) {
      list.push_back(
          {{"pid", fastest[i]->s->key.tgid}, {"comm", fastest[i]->s->comm}, {"forks_per_s", round4(fastest[i]->rate)}});
    }
    ev["members"] = std::move(list);
    nlohmann::json pids = nlohmann::json::array();
    for (size_t i = 0; i < members.size() && i < kEvidenceMembers; ++i) pids.push_back(members[i]->key.tgid);
    ev["group"] = {{"size", members.size()},
                   {"forks_per_s", round4(rate)},
                   {"forkers_forks_per_s", round4(gd.rate)},
                   {"births_per_s", round4(births)},
                   {"trees", trees.size()},
                   {"generations", g.generations},
                   {"min_size", rule_.count},
                   {"opened_by", by_size ? "size" : "forks_per_s"},
                   {"culprit_alive", named_alive},
                   {"oldest_pids", std::move(pids)}};

    Finding f = make_finding(rule_, st.culprit, level, std::move(ev));
    f.outlives_culprit = true;
    for (size_t i = 0; i < members.size() && f.group.size() < kMaxGroupKeys; ++i) f.group.push_back(members[i]->key);
    out.push_back(std::move(f));
  }

  // Whom the group's finding names from now on, when not the one it named
  // (null: no change). The first name is the preferred one; it stays while
  // it can: a bomb's members come and go, and every new name would be a new
  // fault whose hold starts again. A fault about a group outlives the
  // process it names (Finding::outlives_culprit).
  //  - The tree the one named forks in has its root higher up now (a parent
  //    that forks fast too): a tree names its root, as it always did.
  //  - The one named is gone or left the group, and the group has a head
  //    again (the root of a tree of two forkers or more): that root.
  // Only until the rule's hold (or window) has passed under the name: from then on a
  // fault may be open under it, and a new name would resolve it ("process
  // exited") and open a second one for the same bomb. The group's actions
  // reach its live members whoever is named.
  const ProcState* rename(const World& w, const GroupState& st, const std::vector<Tree>& trees,
                          const ProcState* preferred, const std::set<ProcKey>& listed) {
    if (st.culprit.tgid == 0) return preferred;
    // (At least a window: the tree's shape is known only once its rates are.)
    const uint64_t settle = uint64_t(std::max(rule_.hold.count(), rule_.window.count()));
    if (w.now_ns - std::min(w.now_ns, st.named_ns) >= settle) return nullptr;
    for (const Tree& tr : trees)
      for (const Forker* f : tr.members)
        if (f->s->key == st.culprit) return tr.root->key != st.culprit ? tr.root : nullptr;
    const ProcState* cur = w.procs->find(st.culprit);
    const bool gone = cur == nullptr || cur->exited || listed.count(st.culprit) == 0;
    if (!gone) return nullptr;
    for (const Tree& tr : trees)
      if (tr.members.size() >= 2 && lineage_.member(tr.root->key)) return tr.root;
    return nullptr;
  }

  // The oldest root of the group's trees that is a member itself (the
  // originating process while it forks, not a launcher that forked once),
  // else the root of the tree of its fastest forker, else its oldest live member.
  const ProcState* pick_culprit(const std::vector<Tree>& trees, const std::vector<const ProcState*>& members,
                                const std::vector<const Forker*>& forkers) {
    const ProcState* best = nullptr;
    auto older = [](const ProcState* a, const ProcState* b) {
      return a->key.start_ns != b->key.start_ns ? a->key.start_ns < b->key.start_ns : a->key.tgid < b->key.tgid;
    };
    // a root that exited this tick (the table keeps it one tick) names nobody who can be acted on
    for (const Tree& tr : trees)
      if (!tr.root->exited && lineage_.member(tr.root->key) && (best == nullptr || older(tr.root, best)))
        best = tr.root;
    if (best != nullptr) return best;
    const Forker* fastest = nullptr;
    for (const Forker* f : forkers)
      if (fastest == nullptr || f->rate > fastest->rate) fastest = f;
    for (const Tree& tr : trees)
      for (const Forker* f : tr.members)
        if (f == fastest && !tr.root->exited) return tr.root;
    for (const ProcState* s : members)
      if (best == nullptr || older(s, best)) best = s;
    return best;
  }

  bool primed_ = false;
  std::set<ProcKey> forking_;  // forks in the window
  ForkLineage lineage_;
  std::map<ProcKey, GroupState> states_;  // by family
};

}  // namespace

std::unique_ptr<Detector> make_fork_bomb(const RuleConfig& r) { return std::make_unique<ForkBombDetector>(r); }

}  // namespace fp
