// The handler: decides what to do about faults, per the config's policies.
// Pure logic: every side effect goes through the Actuator, time comes in
// through on_tick(), so it runs against fakes in unit tests.
//
// Per (process, fault class) a case walks the policy's action ladder:
//   fault opens ──► act with the current rung (the first one the first time)
//   action ──► watch for recovery_window ──► fault clear: "recovered"
//                                        └─► still open / reopened: "not recovered", act with the next rung
//                                            at once (escalation ignores the cooldown); past the last rung:
//                                            "ladder exhausted", nothing more while the fault stays open
//   a fault that reopens later (within an hour) continues from the next rung, after the cooldown
// Throttles are undone (unthrottle) once every fault that caused them has been
// clear for the policy's cooldown, or at once when the process exits.
// A throttle the process evades (Actuator::take_evasions: a SIGCONT in a
// SIGSTOP phase) ends its recovery check at once as "not recovered": the
// next rung follows without waiting for the window.
// Every decision is an ActionRecord, including the skipped ones (protected,
// cooldown, budget, rate limit); a fault without a policy for its class is
// only alerted and leaves no record here.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "act/action.h"
#include "act/actuator.h"
#include "config/config.h"
#include "detect/fault.h"

namespace fp {

// The process a fault is about, with what policy matching needs (comm, exe,
// cgroup, unit, uid, service). For a crash the process is gone: the daemon's
// resolver answers from what it remembered.
struct TargetResolver {
  virtual ~TargetResolver() = default;
  virtual Target resolve(const FaultRecord& f) = 0;
};

// The safety guard: why a target must not be acted on (pid 1, kernel thread,
// faultprobe itself, a protected comm), or nullopt.
using TargetRefuseFn = std::function<std::optional<std::string>(const Target&)>;

struct HandlerOutput {
  std::vector<ActionRecord> actions;
  std::vector<RecoveryRecord> recoveries;
};

// Whether a policy's match selects the target: every key that is set must
// match (globs as fnmatch(3), uid exactly). An empty match selects nothing.
// A `unit` glob matches a user manager's unit only with user_units (the
// policy's key of that name).
bool policy_matches(const ProcessMatch& m, const Target& t, bool user_units = false);

class Handler {
 public:
  // The rung reached on a (process, class) is remembered this long after the
  // last event, so a fault that comes back continues up the ladder.
  static constexpr uint64_t kMemoryNs = 3600ull * 1'000'000'000ull;
  // The budget's rolling window.
  static constexpr uint64_t kBudgetWindowNs = 3600ull * 1'000'000'000ull;
  // How often exited processes are looked for (throttles to clean up, cases to drop).
  static constexpr uint64_t kSweepNs = 1'000'000'000ull;

  Handler(const Config& cfg, Actuator& act, TargetRefuseFn refuse, bool global_dry_run);

  // New policies and limits. Cases of policies that still exist (same name)
  // keep their rung, watch and cooldown; the others are dropped, and throttles
  // made under a removed policy are undone at the next tick.
  void reload(const Config& cfg);

  // One tick at `now_ns` (CLOCK_MONOTONIC). `emitted`: the fault and resolved
  // records the engine decided at this tick; `open`: every fault open now.
  HandlerOutput on_tick(uint64_t now_ns, const std::vector<FaultRecord>& emitted,
                        const std::vector<FaultRecord>& open, TargetResolver& resolve);

  // The first policy, in file order, whose match selects the target (the
  // daemon asks this to decide which processes to Actuator::remember()).
  const PolicyConfig* policy_for(const Target& t) const;
  // The first one that also has a ladder for the class: the one that acts.
  const PolicyConfig* policy_for(const Target& t, FaultClass cls) const;

  std::vector<ProcKey> throttled() const;  // processes throttled now
  std::vector<ProcKey> restarted() const;  // replacements started by restart/restore in the last hour
  size_t cases() const { return cases_.size(); }

  // A throttle a previous daemon left in place (the throttle backend's state
  // file): undone like any other once no fault is open on the process for the
  // matching policy's cooldown (at once when no policy matches any more).
  void adopt_throttle(const Target& t, uint64_t now_ns);

  // Clean daemon stop: undo every throttle still in place.
  HandlerOutput shutdown(uint64_t now_ns);

 private:
  using CaseKey = std::pair<ProcKey, FaultClass>;
  enum class Block { None, Cooldown, Budget, RateLimit };

  struct Case {
    std::string policy;
    std::string rule;       // of the latest fault
    Target target;          // target.key == the map key's process (the replacement after restart/restore)
    size_t rung = 0;        // ladder index of the next action (== ladder size after the last one)
    bool open = false;      // a fault of the class is open on the process
    bool want = false;      // the fault (re)opened: act when cooldown, budget and rate limit allow
    bool escalate = false;  // the last action did not help: act with the next rung, cooldown does not apply
    bool exhausted = false; // the last rung did not help: nothing more while the fault stays open
    bool refused = false;   // the safety guard said no: nothing more while the fault stays open
    Block blocked = Block::None;  // the reason of the last skipped record while waiting (one record per reason)
    bool acted = false;
    uint64_t last_action_ns = 0;
    uint64_t touched_ns = 0;  // last action or open/resolve edge
    // The recovery check of the last action.
    bool watching = false;
    uint64_t watch_until_ns = 0;
    uint64_t watch_window_ns = 0;  // the policy's recovery_window, or the rule's window when longer
    uint64_t seen_ns = 0;          // while open: the last tick its condition held (0: not known)
    ActionType watch_action = ActionType::Throttle;
    std::string watch_step;
    bool watch_reopened = false;
    bool watch_replacement = false;  // a restart/restore whose replacement is target.key
    bool watch_failed = false;       // the action itself failed
    std::string watch_evaded;        // the throttle was evaded (why): not recovered, whatever the fault says
    bool stale_open = false;  // the open fault is the replaced process's (crash classes): not a new failure
    bool awaiting_replacement = false;  // a restart/restore whose replacement the actuator could not name yet
  };

  struct Throttle {
    Target target;
    std::string policy, rule;
    FaultClass cls = FaultClass::Anomaly;  // of the latest throttle (for the unthrottle record)
    std::vector<FaultClass> classes;       // every class whose ladder throttled it: all must be clear
    ThrottleLimits limits;                 // everything in place (later steps override earlier ones)
    bool clear = false;
    uint64_t clear_since_ns = 0;
    std::string undo_now;  // non-empty: undo at the next tick, for this reason
  };

  const PolicyConfig* policy_named(const std::string& name) const;
  void refill(uint64_t now_ns);
  void open_case(uint64_t now_ns, const FaultRecord& f, TargetResolver& resolve);
  void check_recovery(uint64_t now_ns, Case& c, FaultClass cls, HandlerOutput& out);
  void evaded(uint64_t now_ns, const ThrottleEvasion& e);
  void follow(uint64_t now_ns, const CaseKey& key, const ProcKey& replacement);
  void align_key(const ProcKey& k, FaultClass cls);
  void attempt(uint64_t now_ns, CaseKey key, HandlerOutput& out);
  ActionOutcome perform(const LadderStep& step, const PolicyConfig& p, const Target& t, bool dry_run);
  size_t spent(uint64_t now_ns, const ProcKey& k);
  ThrottleLimits merged_limits(const ProcKey& k, const ThrottleLimits& step) const;
  void undo_throttles(uint64_t now_ns, const std::map<CaseKey, bool>& open, bool sweep, HandlerOutput& out);
  ActionRecord unthrottle(uint64_t now_ns, const Throttle& th, const std::string& why);
  void forget(uint64_t now_ns, bool sweep);

  std::vector<PolicyConfig> policies_;
  // Per rule, how long its condition needs to clear once the cause is gone:
  // its window (the evidence before a throttle slides out of it) + a second.
  // A throttle's recovery is watched at least that long.
  std::map<std::string, uint64_t> settle_ns_;
  void learn_rules(const Config& cfg);
  uint32_t per_minute_ = 0;
  Actuator& act_;
  TargetRefuseFn refuse_;
  bool global_dry_run_;

  std::map<CaseKey, Case> cases_;
  std::map<ProcKey, Throttle> throttles_;
  std::map<ProcKey, std::deque<uint64_t>> spent_;  // action times per process (the budget)
  std::map<ProcKey, uint64_t> restarted_;          // replacement -> when it was started
  double tokens_ = 0;                              // global token bucket
  uint64_t refilled_ns_ = 0;
  bool started_ = false;
  uint64_t next_sweep_ns_ = 0;
};

}  // namespace fp
