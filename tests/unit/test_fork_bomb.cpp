// The threshold detector fork_bomb: forks per second of a process tree,
// blamed on the tree's root; also at 100 Hz sampling. Synthetic processes
// (detect_sim.h) fed through a real ProcessTable, tick by tick.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

// A shell (pid 100) started `bomb` (pid 200) a while ago. Every tick the bomb
// forks `root_forks` children that each live two ticks and fork `child_forks`
// per tick themselves; their children are not modelled.
struct ForkTree {
  Sim& s;
  uint32_t next_pid = 1000;
  std::vector<std::pair<uint32_t, int>> children;  // pid, ticks left

  void tick(uint64_t root_forks, uint64_t child_forks, uint32_t root = 200) {
    for (auto& [pid, left] : children) {
      if (--left == 0) s.exit(pid);
    }
    std::erase_if(children, [](const auto& c) { return c.second == 0; });
    for (uint64_t i = 0; i < root_forks; ++i) {
      uint32_t pid = next_pid++;
      s.spawn(pid, "bomb", root);
      s.set_load(pid, Load{.cores = 0.01, .forks = child_forks});
      children.emplace_back(pid, 2);
    }
    s.set_load(root, Load{.cores = 0.5, .forks = root_forks});
    s.tick();
  }
};

TEST(ForkBomb, BlamesTheRootOfTheTreeNotTheShell) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "bash");
  s.run(5);
  s.proc(100).forks += 1;  // bash forked the bomb
  s.spawn(200, "bomb", 100);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) t.tick(3, 5);
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.culprit, s.key(200));
  EXPECT_EQ(f.severity, Severity::Critical);  // the rule's
  EXPECT_EQ(f.evidence["metric"], "tree_forks_per_s");
  // Own 30/s plus about 6 children at 50/s each.
  EXPECT_GT(f.evidence["value"].get<double>(), 200);
  EXPECT_NEAR(f.evidence["root_forks_per_s"].get<double>(), 30, 1);
  EXPECT_NEAR(f.evidence["top_forker"]["forks_per_s"].get<double>(), 50, 1);
  EXPECT_NE(f.evidence["top_forker"]["pid"], 200);  // a child forked fastest
  EXPECT_GE(f.evidence["forking_processes"].get<size_t>(), 4u);
  EXPECT_FALSE(s.seen[100].any());
}

TEST(ForkBomb, AFastForkingParentIsPartOfTheTree) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "make");
  s.spawn(200, "sh", 100);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) {
    s.set_load(100, Load{.cores = 0.2, .forks = 2});  // 20/s: >= 10 % of the threshold
    t.tick(3, 5);
  }
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
}

TEST(ForkBomb, ProtectedAncestorStopsTheWalk) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(1, "systemd", 0);
  s.spawn(200, "bomb", 1);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) {
    s.set_load(1, Load{.cores = 0.2, .forks = 5});
    t.tick(3, 5);
  }
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(200));
  EXPECT_FALSE(s.seen[1].any());
}

TEST(ForkBomb, WeakInTheHysteresisBandAndNothingForAScript) {
  Sim s;
  s.add(make_fork_bomb(fork_rule()));
  s.spawn(100, "bash");
  s.spawn(200, "build.sh", 100);
  s.set_load(200, Load{.cores = 0.3, .forks = 5});  // 50/s
  s.run(3);
  EXPECT_EQ(s.seen[200].strong, 0);
  EXPECT_GT(s.seen[200].weak, 0);
  s.set_load(200, Load{.cores = 0.3, .forks = 1});  // 10/s
  s.run(2);
  EXPECT_TRUE(s.findings.empty());
}

TEST(ForkBomb, RuleMatchOnTheRoot) {
  RuleConfig r = fork_rule();
  r.match.comm = "worker*";
  Sim s;
  s.add(make_fork_bomb(r));
  s.spawn(100, "bash");
  s.spawn(200, "bomb", 100);
  s.run(1);
  ForkTree t{s};
  for (int i = 0; i < 20; ++i) t.tick(3, 5);
  EXPECT_TRUE(s.seen.empty());
}

// ---- at 100 Hz sampling ----

RuleConfig fast_fork_rule() {
  RuleConfig r = fork_rule();
  r.window = 200ms;
  r.hold = 1s;
  return r;
}
constexpr uint64_t k100Hz = 10 * kMs;

// faultgen's shape: a young launcher forks the bomb once, and the bomb forks
// 500/s. The launcher's one fork over its short life read as 50-100/s: it was
// named root for ~100 ms, then the root moved to the bomb and the hold
// started again. The bomb is the culprit from the start, and the hold starts
// once it forked ten times (20 ms).
TEST(ForkBomb, AYoungLauncherThatForkedOnceIsNotTheRoot) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  WithTracker t{s, r};
  s.spawn(100, "python3");
  t.run(1);
  s.proc(100).forks += 1;
  s.spawn(200, "faultgen", 100);
  t.tick();
  s.proc(200).forks += 1;
  s.spawn(300, "fg-forkbomb", 200);
  s.set_load(300, Load{.cores = 0.3, .forks = 5});
  const uint64_t start = s.now;
  int first_strong = -1;
  for (int i = 1; i <= 130; ++i) {
    t.tick();
    for (const Finding& f : s.findings) EXPECT_EQ(f.culprit, s.key(300)) << "tick " << i;
    if (first_strong < 0 && s.seen[300].strong > 0) first_strong = i;
  }
  EXPECT_EQ(first_strong, 2);  // 10 forks
  ASSERT_EQ(t.opened.size(), 1u);
  EXPECT_EQ(t.opened[0].culprit, s.key(300));
  EXPECT_LE(t.opened[0].mono_ns - start, 1 * kSec + 3 * k100Hz);  // hold + 20 ms + a tick
}

// A young process's rate is over no less than 100 ms: at 100 Hz the two
// forks of a fresh shell (`sh -c 'a | b'`) read as 200/s over its first tick.
// A parallel build's shells are no fork bomb.
TEST(ForkBomb, AYoungShellsFewForksAreNoBomb) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  WithTracker t{s, r};
  s.spawn(100, "make");
  t.run(1);
  uint32_t next = 1000;
  std::vector<std::pair<uint32_t, int>> shells;  // pid, ticks lived
  for (int i = 0; i < 300; ++i) {
    for (auto& [pid, age] : shells) {
      if (++age == 1) s.proc(pid).forks += 2;
      if (age == 30) s.exit(pid);
    }
    std::erase_if(shells, [](const auto& p) { return p.second >= 30; });
    if (i % 10 == 0) {  // a new shell every 100 ms
      s.proc(100).forks += 1;
      s.spawn(next, "sh", 100);
      shells.emplace_back(next++, 0);
    }
    t.tick();
    for (const Finding& f : s.findings) EXPECT_FALSE(f.strong) << "tick " << i << ": " << f.evidence.dump();
  }
  EXPECT_TRUE(t.opened.empty());
}

// The minimum span holds back young processes only: a process older than
// the window is rated over the whole window, as before.
TEST(ForkBomb, AnOldForkerIsRatedOverTheWholeWindow) {
  RuleConfig r = fast_fork_rule();
  Sim s(4, k100Hz);
  s.add(make_fork_bomb(r));
  s.spawn(100, "bash");
  s.spawn(200, "worker", 100);
  s.run(1);
  s.set_load(200, Load{.cores = 0.3, .forks = 5});
  s.run(0.05);  // 25 forks in 50 ms of a 200 ms window: 125/s
  const Finding* f = s.finding_for(200);
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->strong);
  EXPECT_NEAR(f->evidence["value"].get<double>(), 125, 0.01);
}

}  // namespace
}  // namespace fp
