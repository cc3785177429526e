// The handler's decisions against a fake Actuator and a hand-moved clock:
// ladders, recovery checks, escalation, cooldown, budget, rate limit, dry
// run, throttle undo, replacements, reload.
#include "act/handler.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>
#include <string>

namespace fp {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kStart = 1000 * kSec;

ProcKey key(uint32_t pid) { return ProcKey{pid, pid * 1000ull}; }

// Records every call; answers from a script, else Ok (DryRun when asked for a dry run).
class FakeActuator : public Actuator {
 public:
  struct Call {
    std::string what;
    Target target;
    ThrottleLimits limits;
    bool dry_run = false;
  };
  std::vector<Call> calls;
  std::vector<Target> remembered;
  std::deque<ActionOutcome> script;  // outcomes of the next calls, in order
  std::set<ProcKey> dead;
  uint32_t next_pid = 500;  // replacements of restart/restore get 500, 501, ...

  ActionOutcome throttle(const Target& t, const ThrottleLimits& l, bool dry) override {
    return answer("throttle", t, l, dry);
  }
  ActionOutcome unthrottle(const Target& t, bool dry) override { return answer("unthrottle", t, {}, dry); }
  ActionOutcome restart(const Target& t, bool dry) override { return replace("restart", t, dry); }
  ActionOutcome restore(const Target& t, bool dry) override { return replace("restore", t, dry); }
  ActionOutcome kill(const Target& t, bool dry) override { return answer("kill", t, {}, dry); }
  void remember(const Target& t) override { remembered.push_back(t); }
  bool alive(const ProcKey& k) override { return dead.count(k) == 0; }
  std::map<ProcKey, ProcKey> replacements;  // what replacement_of answers (an asynchronous restart's)
  std::optional<ProcKey> replacement_of(const ProcKey& old) override {
    auto it = replacements.find(old);
    if (it == replacements.end()) return std::nullopt;
    return it->second;
  }

  // restore_verdict: the verdicts given, and what each "did not hold" falls back to (none when empty).
  std::vector<bool> verdicts;
  std::deque<std::string> fallbacks;
  std::optional<std::string> restore_verdict(const Target& t, bool held) override {
    (void)t;
    verdicts.push_back(held);
    if (held || fallbacks.empty()) return std::nullopt;
    std::string f = fallbacks.front();
    fallbacks.pop_front();
    return f;
  }

  std::vector<std::string> whats() const {
    std::vector<std::string> out;
    for (const Call& c : calls) out.push_back(c.what);
    return out;
  }

 private:
  ActionOutcome answer(const std::string& what, const Target& t, const ThrottleLimits& l, bool dry) {
    calls.push_back({what, t, l, dry});
    if (!script.empty()) {
      ActionOutcome o = script.front();
      script.pop_front();
      return o;
    }
    if (dry) return ActionOutcome{ActionResult::DryRun, "would " + what + " pid " + std::to_string(t.key.tgid), {}};
    return ActionOutcome{ActionResult::Ok, what + " pid " + std::to_string(t.key.tgid), {}};
  }
  ActionOutcome replace(const std::string& what, const Target& t, bool dry) {
    const bool scripted = !script.empty();
    ActionOutcome o = answer(what, t, {}, dry);
    if (!scripted && o.result == ActionResult::Ok) o.new_key = key(next_pid++);
    return o;
  }
};

// comm by pid, "batch-worker" unless told otherwise.
class FakeResolver : public TargetResolver {
 public:
  std::map<uint32_t, std::string> comms;
  Target resolve(const FaultRecord& f) override {
    Target t;
    t.key = f.culprit;
    auto it = comms.find(f.culprit.tgid);
    t.comm = it != comms.end() ? it->second : "batch-worker";
    t.uid = 1000;
    return t;
  }
};

Config config(std::string_view text) {
  auto r = parse_config(text, "t.toml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : Config{};
}

constexpr std::string_view kBatch = R"(
[[policy]]
name = "batch"
match = { comm = "batch-*" }
on.cpu_runaway = ["throttle:cpu=20%", "restart"]
cooldown = "30s"
recovery_window = "10s"
)";

// A handler, its fakes, the engine's open faults and the clock.
struct Rig {
  explicit Rig(std::string_view toml, bool dry = false, TargetRefuseFn refuse = {})
      : cfg(config(toml)), handler(cfg, act, std::move(refuse), dry) {}

  Config cfg;
  FakeActuator act;
  FakeResolver res;
  Handler handler;
  std::map<std::pair<ProcKey, FaultClass>, FaultRecord> open;
  std::vector<FaultRecord> emitted;
  uint64_t now = kStart;

  void open_fault(uint32_t pid, FaultClass cls = FaultClass::CpuRunaway) { open_key(key(pid), cls); }
  void open_key(ProcKey k, FaultClass cls = FaultClass::CpuRunaway) {
    FaultRecord f;
    f.kind = FaultRecord::Kind::Fault;
    f.cls = cls;
    f.rule = fault_class_name(cls);
    f.culprit = k;
    f.comm = "batch-worker";
    open[{k, cls}] = f;
    emitted.push_back(f);
  }
  void resolve(uint32_t pid, FaultClass cls = FaultClass::CpuRunaway) { resolve_key(key(pid), cls); }
  void resolve_key(ProcKey k, FaultClass cls = FaultClass::CpuRunaway) {
    auto it = open.find({k, cls});
    ASSERT_NE(it, open.end());
    FaultRecord r = it->second;
    r.kind = FaultRecord::Kind::Resolved;
    open.erase(it);
    emitted.push_back(r);
  }
  // One tick at kStart + s seconds.
  HandlerOutput at(double s) {
    now = kStart + static_cast<uint64_t>(s * kSec);
    std::vector<FaultRecord> still;
    for (const auto& [k, f] : open) still.push_back(f);
    HandlerOutput out = handler.on_tick(now, emitted, still, res);
    for (ActionRecord& a : out.actions) EXPECT_EQ(a.mono_ns, now);
    emitted.clear();
    return out;
  }
  // Ticks every second from `from` to `to` (inclusive), concatenating the output.
  HandlerOutput run(double from, double to) {
    HandlerOutput all;
    for (double s = from; s <= to; s += 1) {
      HandlerOutput o = at(s);
      all.actions.insert(all.actions.end(), o.actions.begin(), o.actions.end());
      all.recoveries.insert(all.recoveries.end(), o.recoveries.begin(), o.recoveries.end());
    }
    return all;
  }
};

TEST(Handler, FirstRungWhenAFaultOpens) {
  Rig rig(kBatch);
  rig.open_fault(100);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  const ActionRecord& a = out.actions[0];
  EXPECT_EQ(a.cls, FaultClass::CpuRunaway);
  EXPECT_EQ(a.rule, "cpu_runaway");
  EXPECT_EQ(a.policy, "batch");
  EXPECT_EQ(a.target.key, key(100));
  EXPECT_EQ(a.target.comm, "batch-worker");
  EXPECT_EQ(a.type, ActionType::Throttle);
  EXPECT_EQ(a.step, "throttle:cpu=20%");
  EXPECT_EQ(a.outcome.result, ActionResult::Ok);
  EXPECT_EQ(a.outcome.detail, "throttle pid 100");
  ASSERT_EQ(rig.act.calls.size(), 1u);
  EXPECT_EQ(rig.act.calls[0].what, "throttle");
  EXPECT_EQ(rig.act.calls[0].limits.cpu_share, 0.2);
  EXPECT_FALSE(rig.act.calls[0].dry_run);
  ASSERT_EQ(rig.act.remembered.size(), 1u);  // a process a policy covers: captured while it may still run
  EXPECT_EQ(rig.handler.throttled(), std::vector<ProcKey>{key(100)});
  EXPECT_TRUE(out.recoveries.empty());
  // The fault staying open does not repeat the action.
  EXPECT_TRUE(rig.run(1, 9).actions.empty());
}

TEST(Handler, NoPolicyNoRecord) {
  Rig rig(kBatch);
  rig.res.comms[100] = "nginx";
  rig.open_fault(100);                       // no policy matches nginx
  rig.open_fault(101, FaultClass::Hang);     // batch matches, but has no ladder for hang
  HandlerOutput out = rig.run(0, 20);
  EXPECT_TRUE(out.actions.empty());
  EXPECT_TRUE(out.recoveries.empty());
  EXPECT_TRUE(rig.act.calls.empty());
  EXPECT_EQ(rig.handler.cases(), 0u);
}

TEST(Handler, PolicyForIsFirstMatchInFileOrder) {
  Rig rig(R"(
[[policy]]
name = "hangs"
match = { uid = 1000 }
on.hang = ["kill"]
[[policy]]
name = "batch"
match = { comm = "batch-*" }
on.cpu_runaway = ["restart"]
)");
  Target t;
  t.comm = "batch-worker";
  t.uid = 1000;
  ASSERT_NE(rig.handler.policy_for(t), nullptr);
  EXPECT_EQ(rig.handler.policy_for(t)->name, "hangs");
  EXPECT_EQ(rig.handler.policy_for(t, FaultClass::CpuRunaway)->name, "batch");  // the first one with a ladder
  EXPECT_EQ(rig.handler.policy_for(t, FaultClass::Crash), nullptr);
  t.uid = 0;
  t.comm = "sshd";
  EXPECT_EQ(rig.handler.policy_for(t), nullptr);
}

TEST(Handler, MatchKeysAllMustMatch) {
  ProcessMatch m;
  m.comm = "batch-*";
  m.exe = "/opt/batch/*";
  m.cgroup = "/batch/*";
  m.unit = "x@*.service";
  m.uid = 1000;
  Target t;
  t.comm = "batch-1";
  t.exe = "/opt/batch/bin/w";
  t.cgroup = "/batch/a";
  t.unit = "x@1.service";
  t.uid = 1000;
  EXPECT_TRUE(policy_matches(m, t));
  Target u = t;
  u.uid = 0;
  EXPECT_FALSE(policy_matches(m, u));
  u = t;
  u.unit = "";
  EXPECT_FALSE(policy_matches(m, u));
  u = t;
  u.exe = "/usr/bin/w";
  EXPECT_FALSE(policy_matches(m, u));
  EXPECT_FALSE(policy_matches(ProcessMatch{}, t));  // an empty match never selects
}

TEST(Handler, ProtectedIsSkippedWithTheReason) {
  Rig rig(kBatch, false, [](const Target& t) -> std::optional<std::string> {
    if (t.key.tgid == 1) return "pid 1";
    return std::nullopt;
  });
  rig.open_fault(1);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(out.actions[0].outcome.detail, "protected: pid 1");
  EXPECT_EQ(out.actions[0].type, ActionType::Throttle);
  EXPECT_TRUE(rig.act.calls.empty());
  // Said once; not retried while the fault stays open, and nothing to recover.
  HandlerOutput later = rig.run(1, 60);
  EXPECT_TRUE(later.actions.empty());
  EXPECT_TRUE(later.recoveries.empty());
}

TEST(Handler, BudgetPerProcessPerHour) {
  Rig rig(R"(
[[policy]]
name = "batch"
match = { comm = "batch-*" }
on.cpu_runaway = ["throttle:cpu=50%", "throttle:cpu=20%", "restart"]
cooldown = "0s"
recovery_window = "2s"
budget = 2
)");
  rig.open_fault(100);
  EXPECT_EQ(rig.at(0).actions.size(), 1u);
  HandlerOutput o1 = rig.at(2);  // not recovered: second rung, the budget's last action
  ASSERT_EQ(o1.actions.size(), 1u);
  EXPECT_EQ(o1.actions[0].step, "throttle:cpu=20%");
  EXPECT_EQ(o1.actions[0].outcome.result, ActionResult::Ok);
  HandlerOutput o2 = rig.at(4);  // not recovered again: the third rung is over budget
  ASSERT_EQ(o2.recoveries.size(), 1u);
  ASSERT_EQ(o2.actions.size(), 1u);
  EXPECT_EQ(o2.actions[0].type, ActionType::Restart);
  EXPECT_EQ(o2.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(o2.actions[0].outcome.detail, "budget: 2 actions on this process in the last hour (policy batch)");
  EXPECT_EQ(rig.act.whats(), (std::vector<std::string>{"throttle", "throttle"}));
  EXPECT_TRUE(rig.run(5, 60).actions.empty());  // said once
  // An hour after the first action one is free again: the escalation that waited goes ahead.
  HandlerOutput later = rig.at(3600);
  ASSERT_EQ(later.actions.size(), 1u);
  EXPECT_EQ(later.actions[0].type, ActionType::Restart);
  EXPECT_EQ(later.actions[0].outcome.result, ActionResult::Ok);
}

TEST(Handler, GlobalRateLimit) {
  Rig rig(std::string(kBatch) + "[limits]\nactions_per_minute = 2\n");
  rig.open_fault(100);
  rig.open_fault(101);
  rig.open_fault(102);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 3u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Ok);
  EXPECT_EQ(out.actions[1].outcome.result, ActionResult::Ok);
  EXPECT_EQ(out.actions[2].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(out.actions[2].target.key, key(102));
  EXPECT_EQ(out.actions[2].outcome.detail, "global rate limit: 2 actions per minute");
  EXPECT_EQ(rig.act.calls.size(), 2u);
  // The bucket has one token back after 30 s; 102 waits silently meanwhile.
  rig.resolve(100);
  rig.resolve(101);
  EXPECT_TRUE(rig.run(1, 29).actions.empty());
  HandlerOutput later = rig.at(30);
  ASSERT_EQ(later.actions.size(), 1u);
  EXPECT_EQ(later.actions[0].target.key, key(102));
  EXPECT_EQ(later.actions[0].outcome.result, ActionResult::Ok);
}

TEST(Handler, CooldownDelaysTheNextAction) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);  // throttle
  rig.resolve(100);
  HandlerOutput rec = rig.run(1, 10);
  ASSERT_EQ(rec.recoveries.size(), 1u);
  EXPECT_TRUE(rec.recoveries[0].recovered);
  rig.open_fault(100);  // back at 15 s, within the 30 s cooldown of the throttle at 0 s
  HandlerOutput o = rig.at(15);
  ASSERT_EQ(o.actions.size(), 1u);
  EXPECT_EQ(o.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(o.actions[0].type, ActionType::Restart);
  EXPECT_EQ(o.actions[0].outcome.detail, "cooldown: 15s left of 30s after the last action on this process");
  EXPECT_TRUE(rig.run(16, 29).actions.empty());  // said once
  HandlerOutput after = rig.at(30);              // cooldown over, still open: the next rung
  ASSERT_EQ(after.actions.size(), 1u);
  EXPECT_EQ(after.actions[0].type, ActionType::Restart);
  EXPECT_EQ(after.actions[0].outcome.result, ActionResult::Ok);
}

TEST(Handler, RecoverySuccess) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  rig.resolve(100);
  EXPECT_TRUE(rig.run(1, 9).recoveries.empty());  // the window is 10 s
  HandlerOutput out = rig.at(10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  const RecoveryRecord& r = out.recoveries[0];
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.mono_ns, kStart + 10 * kSec);
  EXPECT_EQ(r.cls, FaultClass::CpuRunaway);
  EXPECT_EQ(r.rule, "cpu_runaway");
  EXPECT_EQ(r.policy, "batch");
  EXPECT_EQ(r.target.key, key(100));
  EXPECT_EQ(r.action, ActionType::Throttle);
  EXPECT_EQ(r.step, "throttle:cpu=20%");
  EXPECT_EQ(r.detail, "no cpu_runaway fault on pid 100 10s after the throttle");
  EXPECT_TRUE(out.actions.empty());
}

constexpr std::string_view kStarvers = R"(
[[policy]]
name = "starvers"
match = { comm = "batch-*" }
on.runq_starvation = ["throttle:cpu=10%"]
recovery_window = "10s"
)";

// A runq_starvation fault on pid 100, throttled at 0 s, whose condition last
// held at `last_seen_s`.
void throttle_starver(Rig& rig, double last_seen_s) {
  rig.open_fault(100, FaultClass::RunqStarvation);
  ASSERT_EQ(rig.at(0).actions.size(), 1u);
  rig.open[{key(100), FaultClass::RunqStarvation}].last_seen_ns = kStart + uint64_t(last_seen_s * kSec);
}

TEST(Handler, AThrottleIsWatchedUntilTheRulesWindowHasSlid) {
  // runq_starvation's p99 is over 10 s: after a throttle its condition cannot
  // clear before the waits from before it leave the window, so a 10 s
  // recovery_window would find it open (the campaign's 1-in-3 misses). The
  // watch lasts the window + 1 s; a fault whose condition has not held for
  // 2 s by then is recovered even though its 10 s `clear` keeps it open.
  Rig rig(std::string("[rules.runq_starvation]\nwindow = \"10s\"\nclear = \"10s\"\n") + std::string(kStarvers));
  // The condition holds until 8.5 s (the window still has the old waits).
  throttle_starver(rig, 8.5);
  EXPECT_TRUE(rig.run(1, 10).recoveries.empty()) << "watched for the window + 1 s";
  HandlerOutput out = rig.at(11);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_TRUE(out.recoveries[0].recovered) << out.recoveries[0].detail;
  EXPECT_EQ(out.recoveries[0].detail,
            "the runq_starvation fault on pid 100 has not held for 2.5s (11s after the throttle; it resolves after "
            "its clear time)");
}

TEST(Handler, AConditionThatStillHoldsAtTheCheckIsNotRecovered) {
  Rig rig(kStarvers);
  throttle_starver(rig, 10);
  HandlerOutput out = rig.run(1, 11);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail, "ladder exhausted");
}

TEST(Handler, EscalatesToTheNextRungWhenNotRecovered) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail, "cpu_runaway fault still open 10s after the throttle; escalating to restart");
  ASSERT_EQ(out.actions.size(), 1u);  // at once, cooldown or not
  EXPECT_EQ(out.actions[0].type, ActionType::Restart);
  EXPECT_EQ(out.actions[0].mono_ns, kStart + 10 * kSec);
  EXPECT_EQ(out.actions[0].outcome.new_key, key(500));
  EXPECT_EQ(rig.act.whats(), (std::vector<std::string>{"throttle", "restart"}));
}

TEST(Handler, ReopenedWithinTheWindowIsNotRecovered) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  rig.resolve(100);
  rig.at(3);
  rig.open_fault(100);
  rig.at(5);
  rig.resolve(100);
  HandlerOutput out = rig.run(6, 10);  // clear at the window's end, but it came back inside it
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail,
            "cpu_runaway fault reopened within 10s after the throttle; escalating to restart");
  EXPECT_TRUE(out.actions.empty());  // nothing open to act on now
  rig.open_fault(100);               // the next reopening goes straight to the next rung, cooldown or not
  HandlerOutput o = rig.at(12);
  ASSERT_EQ(o.actions.size(), 1u);
  EXPECT_EQ(o.actions[0].type, ActionType::Restart);
}

TEST(Handler, LadderExhausted) {
  Rig rig(R"(
[[policy]]
name = "batch"
match = { comm = "batch-*" }
on.cpu_runaway = ["throttle:cpu=20%"]
cooldown = "30s"
)");
  rig.open_fault(100);
  rig.at(0);
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail, "ladder exhausted");
  EXPECT_TRUE(out.actions.empty());
  HandlerOutput more = rig.run(11, 120);  // nothing more while it stays open
  EXPECT_TRUE(more.actions.empty());
  EXPECT_TRUE(more.recoveries.empty());
  EXPECT_EQ(rig.act.calls.size(), 1u);
  // Cleared, unthrottled after the cooldown, back later: the last rung again.
  rig.resolve(100);
  HandlerOutput undo = rig.run(121, 151);
  ASSERT_EQ(undo.actions.size(), 1u);
  EXPECT_EQ(undo.actions[0].type, ActionType::Unthrottle);
  rig.open_fault(100);
  HandlerOutput again = rig.at(200);
  ASSERT_EQ(again.actions.size(), 1u);
  EXPECT_EQ(again.actions[0].step, "throttle:cpu=20%");
}

TEST(Handler, UnthrottleAfterClearAndCooldownThenNextRungOnReopen) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  rig.at(1);
  rig.resolve(100);
  HandlerOutput quiet = rig.run(5, 34);  // clear since 5 s; cooldown 30 s
  EXPECT_TRUE(quiet.actions.empty());
  ASSERT_EQ(quiet.recoveries.size(), 1u);
  EXPECT_TRUE(quiet.recoveries[0].recovered);
  HandlerOutput out = rig.at(35);
  ASSERT_EQ(out.actions.size(), 1u);
  const ActionRecord& u = out.actions[0];
  EXPECT_EQ(u.type, ActionType::Unthrottle);
  EXPECT_EQ(u.outcome.result, ActionResult::Ok);
  EXPECT_EQ(u.outcome.detail, "fault clear for 30s: unthrottle pid 100");
  EXPECT_EQ(u.target.key, key(100));
  EXPECT_EQ(u.policy, "batch");
  EXPECT_EQ(u.cls, FaultClass::CpuRunaway);
  EXPECT_TRUE(rig.handler.throttled().empty());
  EXPECT_FALSE(rig.act.calls.back().dry_run);
  // Back after the unthrottle: the ladder continues where it was.
  rig.open_fault(100);
  HandlerOutput again = rig.at(100);
  ASSERT_EQ(again.actions.size(), 1u);
  EXPECT_EQ(again.actions[0].type, ActionType::Restart);
}

TEST(Handler, ReopenDuringTheCooldownKeepsTheThrottle) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  rig.resolve(100);
  rig.run(1, 20);
  rig.open_fault(100);  // at 21 s: the clear run is broken
  rig.at(21);
  rig.resolve(100);
  HandlerOutput out = rig.run(22, 50);  // clear again since 22 s: no undo before 52 s
  for (const ActionRecord& a : out.actions) EXPECT_NE(a.type, ActionType::Unthrottle);
  EXPECT_EQ(rig.handler.throttled().size(), 1u);
  HandlerOutput undo = rig.run(51, 52);
  ASSERT_FALSE(undo.actions.empty());
  EXPECT_EQ(undo.actions.back().type, ActionType::Unthrottle);
}

TEST(Handler, GlobalDryRunRecordsAndChangesNothing) {
  Rig rig(kBatch, true);
  rig.open_fault(100);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::DryRun);
  EXPECT_EQ(out.actions[0].outcome.detail, "would throttle pid 100");
  ASSERT_EQ(rig.act.calls.size(), 1u);
  EXPECT_TRUE(rig.act.calls[0].dry_run);
  EXPECT_TRUE(rig.handler.throttled().empty());
  // No effect assumed: nothing to check, no escalation.
  HandlerOutput later = rig.run(1, 60);
  EXPECT_TRUE(later.actions.empty());
  EXPECT_TRUE(later.recoveries.empty());
  EXPECT_EQ(rig.act.calls.size(), 1u);
  // A later opening is again the first rung (the ladder did not move).
  rig.resolve(100);
  rig.at(61);
  rig.open_fault(100);
  HandlerOutput again = rig.at(70);
  ASSERT_EQ(again.actions.size(), 1u);
  EXPECT_EQ(again.actions[0].step, "throttle:cpu=20%");
  EXPECT_EQ(again.actions[0].outcome.result, ActionResult::DryRun);
}

TEST(Handler, PolicyDryRun) {
  Rig rig(std::string(kBatch) + "dry_run = true\n");
  rig.open_fault(100);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::DryRun);
  EXPECT_TRUE(rig.act.calls[0].dry_run);
  EXPECT_TRUE(rig.handler.throttled().empty());
  EXPECT_TRUE(rig.run(1, 30).recoveries.empty());
}

TEST(Handler, DryRunsDoNotSpendTheRealRateLimit) {
  Rig rig(std::string(kBatch) + "dry_run = true\n" + R"(
[[policy]]
name = "real"
match = { comm = "real-*" }
on.cpu_runaway = ["kill"]
[limits]
actions_per_minute = 1
)");
  rig.res.comms[200] = "real-one";
  for (uint32_t pid = 100; pid < 105; ++pid) rig.open_fault(pid);
  rig.open_fault(200);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 6u);
  EXPECT_EQ(out.actions.back().target.key, key(200));
  EXPECT_EQ(out.actions.back().outcome.result, ActionResult::Ok);
}

TEST(Handler, ReplacementIsFollowedAcrossRestart) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restart", "restore"]
cooldown = "5s"
recovery_window = "10s"
)");
  rig.act.dead.insert(key(100));  // a crash: the process is gone when the fault opens
  rig.open_fault(100, FaultClass::Crash);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restart);
  EXPECT_EQ(out.actions[0].target.key, key(100));  // the dead process's key
  EXPECT_EQ(out.actions[0].outcome.new_key, key(500));
  EXPECT_EQ(rig.handler.restarted(), std::vector<ProcKey>{key(500)});
  // The dead process's crash fault stays open in the engine; the replacement runs fine.
  HandlerOutput rec = rig.run(1, 10);
  ASSERT_EQ(rec.recoveries.size(), 1u);
  EXPECT_TRUE(rec.recoveries[0].recovered);
  EXPECT_EQ(rec.recoveries[0].target.key, key(500));
  EXPECT_EQ(rec.recoveries[0].detail, "no crash fault on pid 500 10s after the restart");
  rig.resolve(100, FaultClass::Crash);
  rig.at(11);
  // The replacement crashes too: the same case, the next rung, on the replacement.
  rig.act.dead.insert(key(500));
  rig.open_key(key(500), FaultClass::Crash);
  HandlerOutput again = rig.at(20);
  ASSERT_EQ(again.actions.size(), 1u);
  EXPECT_EQ(again.actions[0].type, ActionType::Restore);
  EXPECT_EQ(again.actions[0].target.key, key(500));
  EXPECT_EQ(again.actions[0].outcome.new_key, key(501));
}

TEST(Handler, ReplacementCrashingInsideTheWindowEscalates) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restart", "restore", "restore"]
budget = 2
)");
  rig.act.dead.insert(key(100));
  rig.open_fault(100, FaultClass::Crash);
  rig.at(0);
  rig.act.dead.insert(key(500));
  rig.open_key(key(500), FaultClass::Crash);
  EXPECT_TRUE(rig.at(3).actions.empty());  // watching: no second action before the verdict
  HandlerOutput out = rig.run(4, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].target.key, key(500));
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restore);
  EXPECT_EQ(out.actions[0].target.key, key(500));
  // The budget followed the replacements: after a third crash the next rung is over budget (2).
  rig.act.dead.insert(key(501));
  rig.open_key(key(501), FaultClass::Crash);
  HandlerOutput third = rig.run(11, 20);
  ASSERT_EQ(third.recoveries.size(), 1u);
  EXPECT_FALSE(third.recoveries[0].recovered);
  ASSERT_EQ(third.actions.size(), 1u);
  EXPECT_EQ(third.actions[0].target.key, key(501));
  EXPECT_EQ(third.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(third.actions[0].outcome.detail, "budget: 2 actions on this process in the last hour (policy svc)");
}

TEST(Handler, RestartWithoutAKnownReplacement) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restart", "kill"]
)");
  rig.act.dead.insert(key(100));
  rig.act.script.push_back(ActionOutcome{ActionResult::Ok, "systemctl restart x.service", {}});
  rig.open_fault(100, FaultClass::Crash);
  rig.at(0);
  // The dead process's fault is still open at the window's end: it is not the replacement's.
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_TRUE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail, "no new crash fault 10s after the restart (the replacement's pid is unknown)");
  EXPECT_TRUE(out.actions.empty());
  EXPECT_TRUE(rig.handler.restarted().empty());
}

// A supervised service restarts asynchronously (SIGTERM, grace, start): the
// actuator names the replacement only once it runs, and the case follows it.
TEST(Handler, AsynchronousReplacementIsFollowedOnceItRuns) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.cpu_runaway = ["restore", "kill"]
recovery_window = "10s"
)");
  rig.act.script.push_back(ActionOutcome{ActionResult::Ok, "restarting service counter (SIGTERM sent)", {}});
  rig.open_fault(100);
  rig.at(0);
  rig.run(1, 2);
  EXPECT_TRUE(rig.handler.restarted().empty());  // not known yet
  rig.act.dead.insert(key(100));
  rig.resolve(100);  // the engine: "process exited"
  rig.act.replacements[key(100)] = key(300);
  rig.at(3);
  EXPECT_EQ(rig.handler.restarted(), std::vector<ProcKey>{key(300)});
  // The replacement faults again inside the window: not recovered, the next rung acts on it.
  rig.open_key(key(300));
  HandlerOutput out = rig.run(4, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].target.key, key(300));
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Kill);
  EXPECT_EQ(out.actions[0].target.key, key(300));
}

// A restore whose checkpoint brings the fault back is tried again from what
// the actuator falls back to (an older checkpoint, then a clean start): with
// restore as the only rung the ladder is not exhausted by the first bad checkpoint.
TEST(Handler, RestoreThatBringsTheFaultBackFallsBackBeforeTheLadderMovesOn) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restore"]
recovery_window = "10s"
)");
  rig.act.fallbacks = {"an older checkpoint, /c/1", "a clean start"};
  rig.act.dead.insert(key(100));
  rig.open_fault(100, FaultClass::Crash);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restore);
  // the replacement (500) crashes again: the checkpoint had the fault in it
  rig.open_key(key(500), FaultClass::Crash);
  rig.act.dead.insert(key(500));
  out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail,
            "crash fault still open 10s after the restore: its checkpoint brought the fault back; restoring "
            "again from an older checkpoint, /c/1");
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restore);
  EXPECT_EQ(out.actions[0].target.key, key(500));
  // and once more: the older checkpoint had it too
  rig.open_key(key(501), FaultClass::Crash);
  rig.act.dead.insert(key(501));
  out = rig.run(11, 20);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_NE(out.recoveries[0].detail.find("restoring again from a clean start"), std::string::npos)
      << out.recoveries[0].detail;
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restore);
  // the clean start (502) holds
  out = rig.run(21, 30);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_TRUE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].target.key, key(502));
  EXPECT_TRUE(out.actions.empty());
  EXPECT_EQ(rig.act.verdicts, (std::vector<bool>{false, false, true}));
}

// The actuator names a replacement by its /proc start time (to a clock
// tick); the detector by the kernel's (to the ns). The replacement's fault
// under the detector's key continues the case: its restore is judged (and
// falls back), instead of a second case starting the ladder over.
TEST(Handler, ReplacementsFaultUnderTheDetectorsKeyContinuesTheCase) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restore"]
recovery_window = "10s"
)");
  rig.act.fallbacks = {"a clean start"};
  rig.act.dead.insert(key(100));
  rig.open_fault(100, FaultClass::Crash);
  ASSERT_EQ(rig.at(0).actions.size(), 1u);
  const ProcKey precise{500, key(500).start_ns + 3'000'000};  // 3 ms off: within a clock tick
  rig.open_key(precise, FaultClass::Crash);
  rig.act.dead.insert(key(500));
  rig.act.dead.insert(precise);
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_NE(out.recoveries[0].detail.find("restoring again from a clean start"), std::string::npos)
      << out.recoveries[0].detail;
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].target.key, precise);
  EXPECT_EQ(rig.handler.cases(), 1u);
  EXPECT_EQ(rig.act.verdicts, (std::vector<bool>{false}));
}

TEST(Handler, RestoreWithNothingLeftToFallBackToExhaustsTheLadder) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.crash = ["restore"]
recovery_window = "10s"
)");
  rig.act.dead.insert(key(100));
  rig.open_fault(100, FaultClass::Crash);
  rig.at(0);
  rig.open_key(key(500), FaultClass::Crash);
  rig.act.dead.insert(key(500));
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_EQ(out.recoveries[0].detail, "ladder exhausted");
  EXPECT_TRUE(out.actions.empty());
  EXPECT_EQ(rig.act.verdicts, (std::vector<bool>{false}));
}

TEST(Handler, ActuatorSkippedRungMovesOnAtOnce) {
  Rig rig(R"(
[[policy]]
name = "svc"
match = { comm = "batch-*" }
on.hang = ["restore", "restart"]
)");
  rig.act.script.push_back(ActionOutcome{ActionResult::Skipped, "not a [[service]] with a checkpoint", {}});
  rig.open_fault(100, FaultClass::Hang);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 2u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restore);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Skipped);
  EXPECT_EQ(out.actions[0].outcome.detail, "not a [[service]] with a checkpoint");
  EXPECT_EQ(out.actions[1].type, ActionType::Restart);
  EXPECT_EQ(out.actions[1].outcome.result, ActionResult::Ok);
}

TEST(Handler, FailedActionIsCheckedAndEscalated) {
  Rig rig(kBatch);
  rig.act.script.push_back(ActionOutcome{ActionResult::Failed, "cannot write cpu.cfs_quota_us: EACCES", {}});
  rig.open_fault(100);
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].outcome.result, ActionResult::Failed);
  EXPECT_TRUE(rig.handler.throttled().empty());  // nothing to undo
  HandlerOutput later = rig.run(1, 10);
  ASSERT_EQ(later.recoveries.size(), 1u);
  EXPECT_EQ(later.recoveries[0].detail,
            "cpu_runaway fault still open 10s after the failed throttle; escalating to restart");
  ASSERT_EQ(later.actions.size(), 1u);
  EXPECT_EQ(later.actions[0].type, ActionType::Restart);
}

TEST(Handler, ProcessExitDropsTheThrottle) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  ASSERT_EQ(rig.handler.throttled().size(), 1u);
  rig.act.dead.insert(key(100));
  rig.resolve(100);  // the engine resolves a cpu fault when its process exits
  HandlerOutput out = rig.at(2);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Unthrottle);
  EXPECT_EQ(out.actions[0].outcome.detail, "process exited: unthrottle pid 100");
  EXPECT_TRUE(rig.handler.throttled().empty());
  EXPECT_EQ(rig.act.calls.back().what, "unthrottle");
  EXPECT_EQ(rig.act.calls.back().target.key, key(100));
}

// match.service selects the processes of a [[service]] (resolved by the daemon into Target::service).
TEST(Handler, ServiceMatchSelectsOnlyThatServicesProcesses) {
  ProcessMatch m;
  m.service = "counter*";
  Target t;
  t.comm = "faultgen";
  EXPECT_FALSE(policy_matches(m, t));  // not a service's process
  t.service = "counter-memcg";
  EXPECT_TRUE(policy_matches(m, t));
  t.service = "web";
  EXPECT_FALSE(policy_matches(m, t));
  m.comm = "faultgen";
  t.service = "counter";
  EXPECT_TRUE(policy_matches(m, t));
}

// A throttle a previous daemon left in place is undone after the policy's
// cooldown once no fault is open on the process; an open fault holds it.
TEST(Handler, AdoptedThrottleIsUndoneAfterCooldown) {
  Rig rig(kBatch);
  Target t;
  t.key = key(100);
  t.comm = "batch-worker";
  rig.handler.adopt_throttle(t, kStart);
  ASSERT_EQ(rig.handler.throttled().size(), 1u);
  rig.open_fault(100);
  rig.open_fault(100);  // already throttled: the ladder's next rung would be restart, but it is still open
  rig.run(0, 40);
  EXPECT_EQ(rig.handler.throttled().size(), 1u);
  rig.resolve(100);
  size_t unthrottles = 0;
  for (double s = 41; s <= 75; s += 1)
    for (const auto& a : rig.at(s).actions)
      if (a.type == ActionType::Unthrottle) unthrottles++;
  EXPECT_EQ(unthrottles, 1u);
  EXPECT_TRUE(rig.handler.throttled().empty());
}

TEST(Handler, SecondClassAddsToTheThrottle) {
  Rig rig(R"(
[[policy]]
name = "batch"
match = { comm = "batch-*" }
on.cpu_runaway = ["throttle:cpu=20%"]
on.memory_leak = ["throttle:memory=256M"]
cooldown = "30s"
)");
  rig.open_fault(100);
  rig.at(0);
  rig.open_fault(100, FaultClass::MemoryLeak);
  rig.at(1);
  ASSERT_EQ(rig.act.calls.size(), 2u);
  EXPECT_EQ(rig.act.calls[1].limits.cpu_share, 0.2);  // kept
  EXPECT_EQ(rig.act.calls[1].limits.memory_bytes, 256ull << 20);
  // Undone only when both have been clear for the cooldown.
  rig.resolve(100);
  rig.run(2, 40);
  EXPECT_EQ(rig.handler.throttled().size(), 1u);
  rig.resolve(100, FaultClass::MemoryLeak);
  rig.run(41, 70);
  EXPECT_EQ(rig.handler.throttled().size(), 1u);
  HandlerOutput out = rig.at(71);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Unthrottle);
  EXPECT_TRUE(rig.handler.throttled().empty());
}

TEST(Handler, ReloadKeepsStateOfPoliciesThatStay) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  // Same policy (a longer budget), one more policy: the watch and the throttle stay.
  rig.handler.reload(config(std::string(kBatch) + "budget = 9\n[[policy]]\nname = \"x\"\nmatch = { comm = \"x\" }\n"));
  EXPECT_EQ(rig.handler.throttled().size(), 1u);
  HandlerOutput out = rig.run(1, 10);
  ASSERT_EQ(out.recoveries.size(), 1u);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Restart);  // the ladder went on from where it was
}

TEST(Handler, ReloadWithoutThePolicyUndoesItsThrottles) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.at(0);
  rig.handler.reload(config(""));
  HandlerOutput out = rig.at(1);
  ASSERT_EQ(out.actions.size(), 1u);
  EXPECT_EQ(out.actions[0].type, ActionType::Unthrottle);
  EXPECT_EQ(out.actions[0].outcome.detail, "policy batch was removed: unthrottle pid 100");
  EXPECT_TRUE(rig.handler.throttled().empty());
  EXPECT_EQ(rig.handler.cases(), 0u);
  EXPECT_TRUE(rig.run(2, 30).recoveries.empty());  // the watch went with the policy
}

TEST(Handler, ShutdownUndoesThrottles) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.open_fault(101);
  rig.at(0);
  HandlerOutput out = rig.handler.shutdown(kStart + 5 * kSec);
  ASSERT_EQ(out.actions.size(), 2u);
  for (const ActionRecord& a : out.actions) {
    EXPECT_EQ(a.type, ActionType::Unthrottle);
    EXPECT_EQ(a.outcome.result, ActionResult::Ok);
    EXPECT_EQ(a.mono_ns, kStart + 5 * kSec);
  }
  EXPECT_TRUE(rig.handler.throttled().empty());
}

TEST(Handler, ForgetsDeadProcessesAndOldCases) {
  Rig rig(kBatch);
  rig.open_fault(100);
  rig.open_fault(101);
  rig.at(0);
  rig.resolve(100);
  rig.resolve(101);
  rig.run(1, 40);  // recovered and unthrottled
  EXPECT_EQ(rig.handler.cases(), 2u);  // the rung is remembered
  rig.act.dead.insert(key(101));
  rig.at(41);
  EXPECT_EQ(rig.handler.cases(), 1u);  // gone with its process
  rig.at(3700);
  EXPECT_EQ(rig.handler.cases(), 0u);  // an hour later
}

}  // namespace
}  // namespace fp

namespace fp {
namespace {

// A fork bomb's fault lists its group; the members change while it is open
// (the tracker refreshes the open record): each action acts on who is in it
// then, through one action of the ladder (one token, one budget unit).
TEST(Handler, AGroupFaultActsOnTheGroupAsItIsNow) {
  Rig rig(R"(
[[policy]]
name = "bombs"
match = { comm = "batch-*" }
on.fork_bomb = ["throttle:pids=32", "kill"]
recovery_window = "5s"
)");
  rig.open_fault(100, FaultClass::ForkBomb);
  rig.open[{key(100), FaultClass::ForkBomb}].group = {key(100), key(101), key(102)};
  rig.emitted.back().group = {key(100), key(101), key(102)};
  HandlerOutput out = rig.at(0);
  ASSERT_EQ(rig.act.calls.size(), 1u);
  EXPECT_EQ(rig.act.calls[0].what, "throttle");
  EXPECT_EQ(rig.act.calls[0].target.group, (std::vector<ProcKey>{key(100), key(101), key(102)}));
  // The bomb bred on: the open record now lists other members.
  rig.open[{key(100), FaultClass::ForkBomb}].group = {key(103), key(104)};
  out = rig.run(1, 6);
  ASSERT_EQ(rig.act.calls.size(), 2u);
  EXPECT_EQ(rig.act.calls[1].what, "kill");
  EXPECT_EQ(rig.act.calls[1].target.group, (std::vector<ProcKey>{key(103), key(104)}));
}

}  // namespace
}  // namespace fp
