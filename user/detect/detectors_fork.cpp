// fork_bomb: forks per second of a process tree, blamed on the tree's root.
//
// Forks are counted on the parent, so a process's own fork counter is the
// signal even when its children live for microseconds (the table keeps an
// exited process one tick, enough to count what it forked in its last tick).
#include <algorithm>
#include <map>
#include <set>

#include "detect/detectors.h"
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

struct Forker {
  const ProcState* s = nullptr;
  uint64_t forks = 0;
  double rate = 0;  // own forks per second
};

class ForkBombDetector final : public RuleDetector {
 public:
  using RuleDetector::RuleDetector;

  void evaluate(const World& w, std::vector<Finding>& out) override {
    const uint64_t win = window_ns(rule_);
    const ProcessTable& t = *w.procs;
    // Who forked in the window: looked at again only when their window may
    // have changed. Their rates (a young process's span grows) are taken anew
    // at every tick; there are few of them.
    for (const ProcKey& k : t.removed()) forking_.erase(k);
    t.for_each_dirty(win, w.now_ns, !primed_, [&](const ProcState& s) {
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
    std::map<ProcKey, Forker> forkers;
    const uint64_t min_span = min_rate_span_ns(win, w.tick_ns);
    for (const ProcKey& k : forking_) {
      const ProcState* s = t.find(k);
      if (s == nullptr) continue;
      WindowDelta d = t.window(*s, w.now_ns, win);
      if (d.delta.forks == 0) continue;
      forkers[s->key] = Forker{s, d.delta.forks, per_sec(d.delta.forks, std::max(d.span_ns, min_span))};
    }
    if (forkers.empty()) return;

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

      double tree_rate = 0;
      uint64_t tree_forks = 0;
      std::vector<const Forker*> members;
      for (const Forker* f : by_rate) {
        if (assigned.count(f->s->key) != 0) continue;  // counted in an earlier tree
        if (f->s->key != root->key && ancestors_of[f->s->key].count(root->key) == 0) continue;
        tree_rate += f->rate;
        tree_forks += f->forks;
        members.push_back(f);
        assigned.insert(f->s->key);
      }
      Level level = level_of(tree_rate, rule_);
      if (level == Level::None || !rule_matches(rule_, *root, w)) continue;

      auto own = forkers.find(root->key);
      nlohmann::json ev = rule_evidence(rule_, "tree_forks_per_s", tree_rate);
      ev["tree_forks"] = tree_forks;
      ev["root_forks_per_s"] = round4(own != forkers.end() ? own->second.rate : 0);
      ev["top_forker"] = {{"pid", top->s->key.tgid}, {"comm", top->s->comm}, {"forks_per_s", round4(top->rate)}};
      ev["forking_processes"] = members.size();
      nlohmann::json list = nlohmann::json::array();
      for (size_t i = 0; i < members.size() && i < kEvidenceMembers; ++i) {
        list.push_back({{"pid", members[i]->s->key.tgid},
                        {"comm", members[i]->s->comm},
                        {"forks_per_s", round4(members[i]->rate)}});
      }
      ev["members"] = std::move(list);
      out.push_back(make_finding(rule_, root->key, level, std::move(ev)));
    }
  }

 private:
  bool primed_ = false;
  std::set<ProcKey> forking_;  // forks in the window

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
};

}  // namespace

std::unique_ptr<Detector> make_fork_bomb(const RuleConfig& r) { return std::make_unique<ForkBombDetector>(r); }

}  // namespace fp
