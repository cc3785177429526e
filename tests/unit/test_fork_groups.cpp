// fork_bomb over groups: the lineage ledger (replicas, spawns, families that
// outlive their parents), the group rating of bombs whose generations
// reparent, the size trigger of a bomb held by a pids limit, and the
// workloads that must stay clean (a shell loop, a parallel build, a prefork
// server). Also a real shell "walker" bomb stopped and killed as a group.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "act/cgroup_throttle.h"
#include "act/process.h"
#include "act/process_group.h"
#include "detect/detectors.h"
#include "detect/fork_lineage.h"
#include "detect/tracker.h"
#include "detect_sim.h"
#include "fake_cgroupfs.h"
#include "fake_tree.h"
#include "../time_scale.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using sim::kMs;
using sim::kSec;
using sim::Load;
using sim::Sim;

RuleConfig fork_rule(uint32_t count = 64) {
  RuleConfig r;
  r.name = "fork_bomb";
  r.cls = FaultClass::ForkBomb;
  r.severity = Severity::Critical;
  r.threshold = 100;
  r.resolve = 20;
  r.window = 1s;
  r.hold = 3s;
  r.clear = 5s;
  r.count = count;
  return r;
}

// The detector's findings through the tracker, as the engine runs them.
struct Tracked {
  Tracked(Sim& sim, RuleConfig r) : s(sim), rule(std::move(r)) { s.add(make_fork_bomb(rule)); }
  Sim& s;
  RuleConfig rule;
  FaultTracker tracker;
  std::vector<FaultRecord> opened, resolved;
  void tick() {
    std::vector<Finding> findings = s.tick();
    std::vector<FaultRecord> out;
    tracker.step(rule, s.now, findings, s.table, out);
    for (FaultRecord& r : out) (r.kind == FaultRecord::Kind::Fault ? opened : resolved).push_back(std::move(r));
  }
  void run(double seconds) {
    for (int i = 0, n = static_cast<int>(std::llround(seconds * kSec / s.world.tick_ns)); i < n; ++i) tick();
  }
};

// `b(){ b|b& }; b`: every member forks two replicas of itself and exits, so
// each generation's parent is gone (reparented to init) before the table
// sees it fork. At most `per_tick` members fork in a tick; the others wait
// alive (a pids limit makes them retry). Pids from 1000.
struct ShellBomb {
  Sim& s;
  uint32_t per_tick;
  uint32_t next = 1000;
  std::vector<uint32_t> waiting;
  std::set<uint32_t> all;
  bool stopped = false;

  void start(uint32_t origin) {
    waiting.push_back(origin);
    all.insert(origin);
  }
  void step() {
    if (stopped) return;
    std::vector<uint32_t> now;
    const size_t n = std::min<size_t>(per_tick, waiting.size());
    now.assign(waiting.begin(), waiting.begin() + static_cast<long>(n));
    waiting.erase(waiting.begin(), waiting.begin() + static_cast<long>(n));
    for (uint32_t pid : now) {
      s.proc(pid).forks += 2;
      for (int i = 0; i < 2; ++i) {
        s.spawn(next, "bash", pid);
        waiting.push_back(next);
        all.insert(next++);
      }
      s.exit(pid);
    }
  }
  void kill_all() {
    for (uint32_t pid : waiting) s.exit(pid);
    waiting.clear();
    stopped = true;
  }
};

TEST(ForkGroups, ABombWhoseGenerationsReparentIsOneFault) {
  Sim s;
  Tracked t{s, fork_rule(0)};  // the rate alone: no size trigger
  s.spawn(50, "e2e_tests");
  t.run(1);
  s.proc(50).forks += 1;
  s.spawn(100, "bash", 50).execs = 1;  // sh -c '... exec bash -c "b(){ b|b& }; b"'
  ShellBomb bomb{s, 15};
  bomb.start(100);
  for (int i = 0; i < 60; ++i) {
    bomb.step();
    t.tick();
    // No single process (or tree) forks fast: each forks twice in its life.
    for (const Finding& f : s.findings) EXPECT_NE(f.culprit.tgid, 50u) << "the launcher is not in the group";
  }
  ASSERT_EQ(t.opened.size(), 1u) << "one fault for the whole bomb";
  const FaultRecord& f = t.opened[0];
  EXPECT_TRUE(bomb.all.count(f.culprit.tgid)) << "pid " << f.culprit.tgid << " is no member of the bomb";
  EXPECT_EQ(f.evidence["metric"], "tree_forks_per_s");
  EXPECT_GE(f.evidence["value"].get<double>(), 100);
  EXPECT_GE(f.evidence["group"]["births_per_s"].get<double>(), 250);  // 30 per 100 ms
  EXPECT_GE(f.evidence["group"]["size"].get<size_t>(), 30u);
  EXPECT_GE(f.evidence["group"]["generations"].get<uint32_t>(), 10u);  // a round a generation
  EXPECT_EQ(f.evidence["group"]["opened_by"], "forks_per_s");
  EXPECT_GE(f.group.size(), 30u);
  for (const ProcKey& k : f.group) EXPECT_TRUE(bomb.all.count(k.tgid)) << k.tgid;
  // It stays one fault while the named process exits and the bomb goes on ...
  EXPECT_TRUE(t.resolved.empty());
  // ... and resolves once the bomb is gone.
  bomb.kill_all();
  t.run(8);
  ASSERT_EQ(t.resolved.size(), 1u);
  EXPECT_EQ(t.resolved[0].culprit, f.culprit);
  EXPECT_EQ(t.opened.size(), 1u);
}

TEST(ForkGroups, ABombHeldByAPidsLimitOpensByItsSize) {
  Sim s;
  Tracked t{s, fork_rule(64)};
  s.spawn(100, "bash").execs = 1;
  // It doubles to 128 members, then (at the limit) only two members a tick
  // manage a fork: 40 forks/s, below the threshold, for good.
  ShellBomb bomb{s, 1000};
  bomb.start(100);
  for (int i = 0; i < 7; ++i) {
    bomb.step();
    t.tick();
  }
  bomb.per_tick = 2;
  for (int i = 0; i < 60; ++i) {
    bomb.step();
    t.tick();
  }
  ASSERT_EQ(t.opened.size(), 1u);
  const FaultRecord& f = t.opened[0];
  EXPECT_TRUE(bomb.all.count(f.culprit.tgid));
  EXPECT_LT(f.evidence["value"].get<double>(), 100);
  EXPECT_EQ(f.evidence["group"]["opened_by"], "size");
  EXPECT_GE(f.evidence["group"]["size"].get<size_t>(), 64u);
  EXPECT_EQ(f.evidence["group"]["min_size"], 64);
}

// A shell loop running a command 500 times a second: its children exec.
TEST(ForkGroups, AShellLoopSpawningCommandsIsNoBomb) {
  Sim s;
  Tracked t{s, fork_rule()};
  s.spawn(100, "bash").execs = 1;
  uint32_t next = 1000;
  std::vector<uint32_t> last;
  for (int i = 0; i < 100; ++i) {
    for (uint32_t pid : last) s.exit(pid);
    last.clear();
    s.proc(100).forks += 50;
    for (int c = 0; c < 50; ++c) {
      s.spawn(next, "true", 100).execs = 1;
      last.push_back(next++);
    }
    t.tick();
    for (const Finding& f : s.findings) EXPECT_FALSE(f.strong) << f.evidence.dump();
  }
  EXPECT_TRUE(t.opened.empty());
}

// make -j at 100 compiles a second: make's children exec the compiler driver,
// whose children exec cc1 and as.
TEST(ForkGroups, AParallelBuildIsNoBomb) {
  Sim s;
  Tracked t{s, fork_rule()};
  s.spawn(100, "make").execs = 1;
  uint32_t next = 1000;
  std::vector<uint32_t> last;
  for (int i = 0; i < 100; ++i) {
    for (uint32_t pid : last) s.exit(pid);
    last.clear();
    for (int c = 0; c < 10; ++c) {
      s.proc(100).forks += 1;
      uint32_t cc = next++;
      s.spawn(cc, "cc", 100).execs = 1;
      s.proc(cc).forks += 2;
      for (const char* tool : {"cc1", "as"}) {
        s.spawn(next, tool, cc).execs = 1;
        last.push_back(next++);
      }
      last.push_back(cc);
    }
    t.tick();
    for (const Finding& f : s.findings) EXPECT_FALSE(f.strong) << f.evidence.dump();
  }
  EXPECT_TRUE(t.opened.empty());
}

// A prefork server starts 100 workers (replicas, one generation below it)
// and replaces a few a second: big, breeding, but no lineage.
TEST(ForkGroups, APreforkServerIsNoBomb) {
  Sim s;
  Tracked t{s, fork_rule(64)};
  s.spawn(100, "apache2").execs = 1;
  uint32_t next = 1000;
  std::vector<uint32_t> workers;
  for (int i = 0; i < 300; ++i) {
    const int n = i < 20 ? 5 : (i % 5 == 0 ? 1 : 0);  // 50/s for 2 s, then 2/s
    for (int c = 0; c < n; ++c) {
      s.proc(100).forks += 1;
      s.spawn(next, "apache2", 100);
      workers.push_back(next++);
    }
    if (i >= 20 && i % 5 == 0 && !workers.empty()) {
      s.exit(workers.front());
      workers.erase(workers.begin());
    }
    t.tick();
    for (const Finding& f : s.findings) EXPECT_FALSE(f.strong) << "tick " << i << ": " << f.evidence.dump();
  }
  EXPECT_TRUE(t.opened.empty());
}

// ---- the ledger ----

ProcState state(uint32_t pid, uint64_t start, uint32_t ppid, uint64_t forks = 0, uint64_t execs = 0) {
  ProcState s;
  s.key = ProcKey{pid, start};
  s.ppid = ppid;
  s.now.forks = forks;
  s.now.execs = execs;
  return s;
}

TEST(ForkLineage, AChildJoinsItsParentsFamilyAfterTheParentIsGone) {
  ForkLineage l(2 * kSec);
  uint64_t now = 100 * kSec;
  l.observe(state(10, 1, 1, 1, 1), now);  // the origin exec'd; forked once
  l.expire({ProcKey{10, 1}}, now + 100 * kMs);  // exited and removed from the table
  // Its child, first seen a tick later (reparented to init by now; the probe kept the parent).
  l.observe(state(11, 2, 10), now + 100 * kMs);
  const ForkLineage::Entry* e = l.find(ProcKey{11, 2});
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->family, (ProcKey{10, 1}));
  EXPECT_EQ(e->gen, 1u);
  // Past the keep time the parent is forgotten: a late child starts its own family.
  l.expire({}, now + 3 * kSec);
  l.observe(state(12, 3, 10, 1), now + 3 * kSec);
  EXPECT_EQ(l.family_of(ProcKey{12, 3}), (ProcKey{12, 3}));
}

TEST(ForkLineage, AChildThatExecsIsASpawnNotAReplica) {
  ForkLineage l(2 * kSec);
  const uint64_t now = 100 * kSec;
  l.observe(state(10, 1, 1, 3, 1), now);
  l.observe(state(11, 5, 10), now);            // seen before its exec: a replica for now
  EXPECT_EQ(l.family_of(ProcKey{11, 5}), (ProcKey{10, 1}));
  l.observe(state(11, 5, 10, 0, 1), now + 1);  // exec'd
  EXPECT_EQ(l.family_of(ProcKey{11, 5}), (ProcKey{11, 5}));
  l.observe(state(12, 6, 10, 0, 1), now + 1);  // exec'd before it was seen: not even an entry
  l.observe(state(12, 6, 10, 0, 1), now + 2);  // seen again: counted once
  EXPECT_EQ(l.find(ProcKey{12, 6}), nullptr);
  EXPECT_EQ(l.spawns_since(ProcKey{10, 1}, 0), 2u);
  EXPECT_EQ(l.spawns_since(ProcKey{10, 1}, 6), 1u);
  EXPECT_EQ(l.birth_rate(ProcKey{10, 1}, now + 2, kSec, 100 * kMs), 0.0);
}

TEST(ForkLineage, APidReusedAfterTheChildWasBornIsNotItsParent) {
  ForkLineage l(2 * kSec);
  const uint64_t now = 100 * kSec;
  l.observe(state(10, 50, 1, 1, 1), now);  // pid 10, started after the child below
  l.observe(state(11, 20, 10), now);
  EXPECT_EQ(l.family_of(ProcKey{11, 20}), (ProcKey{11, 20}));
  EXPECT_EQ(l.find(ProcKey{11, 20}), nullptr);  // no forks, no parent: not remembered
}

TEST(ForkLineage, TheGroupIsBelowTheQualifiedNotTheLaunchers) {
  ForkLineage l(2 * kSec);
  const uint64_t now = 100 * kSec;
  l.observe(state(10, 1, 1, 1, 1), now);  // launcher (python3), forked once
  l.observe(state(11, 2, 10, 1), now);    // a replica that forked once (faultgen's supervisor)
  l.observe(state(12, 3, 11, 50), now);   // the bomb
  l.observe(state(13, 4, 12), now);       // its children
  l.observe(state(14, 5, 12), now);
  l.qualify(ProcKey{12, 3}, now);
  ForkLineage::Group g = l.group_of(ProcKey{10, 1});
  std::vector<uint32_t> pids;
  for (const auto* e : g.live) pids.push_back(e->key.tgid);
  EXPECT_EQ(pids, (std::vector<uint32_t>{12, 13, 14}));
  EXPECT_EQ(g.generations, 2u);
}

// ---- a group throttle (cgroup v1 on a fake cgroupfs) ----

// The culprit is throttled as any process (a bomb shares its cgroup: a new
// child of it), and the other members join it there; release puts all of
// them back.
TEST(GroupThrottle, TheOtherMembersJoinTheCulpritsPlace) {
  test::FakeTree t;
  for (const char* r : {"cpu", "memory", "blkio", "pids"}) t.put(std::string(r) + "/cgroup.procs", "");
  t.put("pids/bomb/cgroup.procs", "200\n201\n202\n203\n");
  t.put("pids/bomb/pids.max", "max\n");
  t.put("proc/200/cgroup", "5:pids:/bomb\n4:blkio:/\n3:memory:/\n2:cpu,cpuacct:/\n0::/\n");
  test::FakeCgroupFs fs({t.path("cpu"), t.path("memory"), t.path("blkio"), t.path("pids")}, {});
  const std::map<std::string, std::string> v1{{"cpu", t.path("cpu")},
                                              {"memory", t.path("memory")},
                                              {"blkio", t.path("blkio")},
                                              {"pids", t.path("pids")}};
  CgroupV1Throttle b(v1, CgroupThrottleEnv{t.path("proc"), "", &fs});
  const ProcKey culprit{200, 7};
  ThrottleLimits l;
  l.pids = 16;
  auto th = b.throttle(culprit, l);
  ASSERT_TRUE(th.ok()) << th.error().message;
  fs.dead.insert(203);  // exited meanwhile
  auto r = b.add_members(culprit, {200, 201, 202, 203});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("2 other member(s) of the group moved in, 1 had exited"), std::string::npos) << *r;
  const std::string own = "pids/bomb/faultprobe-p200-7";
  EXPECT_EQ(t.get(own + "/pids.max"), "16");
  auto in = fs.members(t.path(own));
  EXPECT_EQ(std::set<pid_t>(in.begin(), in.end()), (std::set<pid_t>{200, 201, 202}));
  EXPECT_TRUE(b.members_left(culprit));
  ASSERT_TRUE(b.release(culprit).ok());
  in = fs.members(t.path("pids/bomb"));
  EXPECT_TRUE(std::set<pid_t>(in.begin(), in.end()).count(202));
  EXPECT_FALSE(b.members_left(culprit));
}

TEST(GroupThrottle, AddingToAProcessNotThrottledFails) {
  test::FakeTree t;
  t.put("pids/cgroup.procs", "");
  test::FakeCgroupFs fs({t.path("pids")}, {});
  const std::map<std::string, std::string> v1{{"pids", t.path("pids")}};
  CgroupV1Throttle b(v1, CgroupThrottleEnv{t.path("proc"), "", &fs});
  auto r = b.add_members(ProcKey{1, 1}, {2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOENT);
}

// ---- a real group: shell "walkers" that keep forking and reparenting ----

// Polls `pred` every 10 ms until it holds or `timeout` passes (a state, not a time).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// Each walker sleeps 20 ms, starts its successor in the background and exits:
// a group of constant size that forks forever and whose every generation is
// reparented to init. In its own session (setsid), so nothing else matches.
class Walkers {
 public:
  Walkers() {
    pid_ = fork();
    if (pid_ == 0) {
      execl("/usr/bin/setsid", "setsid", "/bin/bash", "-c",
            "w(){ sleep 0.02; w & }; for i in 1 2 3 4 5; do w & done; exec sleep 60", nullptr);
      _exit(127);
    }
  }
  ~Walkers() {
    // Whatever happens in the test, nothing of the session survives it.
    for (int round = 0; round < 50 && !members().empty(); ++round) {
      for (const ProcKey& k : members()) ::kill(pid_t(k.tgid), SIGKILL);
      std::this_thread::sleep_for(20ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  // The session's live processes now (the session id is setsid's pid: it
  // execs bash). Zombies are dead: init here may be slow to reap them.
  std::vector<ProcKey> members() const {
    std::vector<ProcKey> out;
    for (const auto& [pid, st] : scan_processes())
      if (st.session == pid_ && st.state != 'Z' && st.state != 'X')
        out.push_back(ProcKey{uint32_t(pid), start_ticks_to_mono_ns(st.starttime_ticks)});
    return out;
  }
  pid_t session() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

TEST(ProcessGroup, KillConvergesOnWalkersThatKeepForkingAndReparenting) {
  Walkers w;
  // Wait for the walkers to be walking (a state, not a time): more than the
  // 5 walkers + their sleeps + the session leader.
  ASSERT_TRUE(wait_until([&] { return w.members().size() >= 6; }, test::scaled(10s)));
  std::vector<ProcKey> seeds;
  for (const ProcKey& k : w.members())
    if (k.tgid != uint32_t(w.session())) seeds.push_back(k);  // the leader is no walker: it sleeps
  // Only some seeds: the rest must be found as children and reparented generations.
  seeds.resize(std::min<size_t>(seeds.size(), 2));
  std::this_thread::sleep_for(100ms);  // the seeds' successors are born and reparented meanwhile
  auto r = kill_group(seeds);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("stopped and killed"), std::string::npos) << *r;
  // No walker left: only the session leader (sleep 60, not a bash) may remain.
  EXPECT_TRUE(wait_until(
      [&] {
        for (const ProcKey& k : w.members())
          if (k.tgid != uint32_t(w.session())) return false;
        return true;
      },
      test::scaled(5s)))
      << *r;
}

TEST(ProcessGroup, RefusedMembersAreLeftAloneAndNamed) {
  Walkers w;
  ASSERT_TRUE(wait_until([&] { return w.members().size() >= 6; }, test::scaled(10s)));
  std::vector<ProcKey> seeds = w.members();
  auto refuse_all = [](const ProcKey&, std::string_view) -> std::optional<std::string> { return "protected: test"; };
  auto r = kill_group(seeds, "/proc", refuse_all);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("every live member of the group is protected"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace fp
