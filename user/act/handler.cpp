#include "act/handler.h"

#include <fnmatch.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "act/spawn.h"
#include "detect/tracker.h"
#include "util/duration.h"

namespace fp {
namespace {

constexpr double kNsPerMinute = 60e9;
// An open fault whose condition has not held for this long (no finding, not
// even a weak one above the resolve threshold) counts as recovered at the
// recovery check: a detector may skip a tick or two while its condition holds.
constexpr uint64_t kClearingNs = 2'000'000'000;

bool glob(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

std::string dur(std::chrono::nanoseconds d) { return format_duration(d); }
std::string dur(uint64_t ns) { return format_duration(std::chrono::nanoseconds(static_cast<int64_t>(ns))); }

std::string pid_text(const Target& t) { return "pid " + std::to_string(t.key.tgid); }

bool replaces(ActionType t) { return t == ActionType::Restart || t == ActionType::Restore; }

}  // namespace

bool policy_matches(const ProcessMatch& m, const Target& t, bool user_units) {
  if (m.empty()) return false;  // the parser refuses it; never let it mean "every process"
  if (m.comm && !glob(*m.comm, t.comm)) return false;
  if (m.exe && !glob(*m.exe, t.exe)) return false;
  if (m.cgroup && !glob(*m.cgroup, t.cgroup)) return false;
  // A user unit's name is the user's choice: a glob written for system units
  // ("sshd.service") must not select it.
  if (m.unit && ((t.unit_user && !user_units) || !glob(*m.unit, t.unit))) return false;
  if (m.uid && *m.uid != t.uid) return false;
  if (m.service && (t.service.empty() || !glob(*m.service, t.service))) return false;
  return true;
}

Handler::Handler(const Config& cfg, Actuator& act, TargetRefuseFn refuse, bool global_dry_run)
    : policies_(cfg.policies),
      per_minute_(cfg.limits.global_per_minute),
      act_(act),
      refuse_(std::move(refuse)),
      global_dry_run_(global_dry_run),
      tokens_(cfg.limits.global_per_minute) {
  learn_rules(cfg);
}

void Handler::learn_rules(const Config& cfg) {
  settle_ns_.clear();
  for (const RuleConfig& r : cfg.rules)
    settle_ns_[r.name] = static_cast<uint64_t>((r.window + std::chrono::seconds(1)).count());
}

void Handler::reload(const Config& cfg) {
  policies_ = cfg.policies;
  learn_rules(cfg);
  per_minute_ = cfg.limits.global_per_minute;
  tokens_ = std::min(tokens_, static_cast<double>(per_minute_));
  for (auto it = cases_.begin(); it != cases_.end();) {
    const PolicyConfig* p = policy_named(it->second.policy);
    const auto* ladder = p ? p->ladder(it->first.second) : nullptr;
    if (!ladder || ladder->empty()) {
      it = cases_.erase(it);
      continue;
    }
    it->second.rung = std::min(it->second.rung, ladder->size());
    ++it;
  }
  for (auto& [key, th] : throttles_)
    if (!policy_named(th.policy)) th.undo_now = "policy " + th.policy + " was removed";
}

const PolicyConfig* Handler::policy_named(const std::string& name) const {
  for (const PolicyConfig& p : policies_)
    if (p.name == name) return &p;
  return nullptr;
}

const PolicyConfig* Handler::policy_for(const Target& t) const {
  for (const PolicyConfig& p : policies_)
    if (policy_matches(p.match, t, p.user_units)) return &p;
  return nullptr;
}

const PolicyConfig* Handler::policy_for(const Target& t, FaultClass cls) const {
  for (const PolicyConfig& p : policies_) {
    const auto* ladder = p.ladder(cls);
    if (ladder && !ladder->empty() && policy_matches(p.match, t, p.user_units)) return &p;
  }
  return nullptr;
}

std::vector<ProcKey> Handler::throttled() const {
  std::vector<ProcKey> out;
  for (const auto& [key, th] : throttles_) out.push_back(key);
  return out;
}

std::vector<ProcKey> Handler::restarted() const {
  std::vector<ProcKey> out;
  for (const auto& [key, when] : restarted_) out.push_back(key);
  return out;
}

// The global rate limit: a bucket of per_minute_ tokens, refilled evenly.
void Handler::refill(uint64_t now_ns) {
  if (!started_) {
    started_ = true;
    refilled_ns_ = now_ns;
    return;
  }
  if (now_ns <= refilled_ns_) return;
  tokens_ = std::min(static_cast<double>(per_minute_),
                     tokens_ + static_cast<double>(now_ns - refilled_ns_) * per_minute_ / kNsPerMinute);
  refilled_ns_ = now_ns;
}

// Actions on the process in the budget's window (old ones forgotten).
size_t Handler::spent(uint64_t now_ns, const ProcKey& k) {
  auto it = spent_.find(k);
  if (it == spent_.end()) return 0;
  auto& times = it->second;
  while (!times.empty() && times.front() + kBudgetWindowNs <= now_ns) times.pop_front();
  return times.size();
}

namespace {

// Hardware faults blame a device (culprit pid 0): a policy for their class
// acts on the processes they hurt, one case per victim. Without victims the
// fault is only alerted.
std::vector<FaultRecord> per_victim(const std::vector<FaultRecord>& in) {
  std::vector<FaultRecord> out;
  out.reserve(in.size());
  for (const FaultRecord& f : in) {
    // A kernel error in interrupt context (or the idle task) names no process: nothing to act on.
    if (f.cls == FaultClass::KernelError && f.culprit.tgid == 0) continue;
    if (!is_hardware_class(f.cls)) {
      out.push_back(f);
      continue;
    }
    for (const ProcKey& k : f.victim_keys) {
      FaultRecord v = f;
      v.culprit = k;
      v.comm.clear();
      v.cgroup.clear();
      v.unit.clear();
      v.container.clear();
      out.push_back(std::move(v));
    }
  }
  return out;
}

}  // namespace

HandlerOutput Handler::on_tick(uint64_t now_ns, const std::vector<FaultRecord>& emitted_in,
                               const std::vector<FaultRecord>& open_in, TargetResolver& resolve) {
  const std::vector<FaultRecord> emitted = per_victim(emitted_in);
  const std::vector<FaultRecord> open = per_victim(open_in);
  HandlerOutput out;
  refill(now_ns);

  // What is open now: the engine's list, plus what it opened at this tick.
  std::map<CaseKey, bool> open_now;
  for (const FaultRecord& f : open) open_now[{f.culprit, f.cls}] = true;
  for (const FaultRecord& f : emitted)
    if (f.kind == FaultRecord::Kind::Fault) open_now[{f.culprit, f.cls}] = true;
  // When each open fault's condition last held (a fault opened now holds now).
  std::map<CaseKey, uint64_t> seen_now;
  for (const FaultRecord& f : open) {
    uint64_t& s = seen_now[{f.culprit, f.cls}];
    s = f.last_seen_ns == 0 ? now_ns : std::max(s, f.last_seen_ns);
  }
  for (const FaultRecord& f : emitted)
    if (f.kind == FaultRecord::Kind::Fault) seen_now[{f.culprit, f.cls}] = now_ns;

  // A replacement's faults, under the key the detector knows it by.
  if (!restarted_.empty()) {
    for (const FaultRecord& f : open) align_key(f.culprit, f.cls);
    for (const FaultRecord& f : emitted)
      if (f.kind == FaultRecord::Kind::Fault) align_key(f.culprit, f.cls);
  }

  // New cases: faults opening on processes a policy covers for their class.
  for (const FaultRecord& f : emitted) {
    if (f.kind != FaultRecord::Kind::Fault) continue;
    auto it = cases_.find({f.culprit, f.cls});
    if (it != cases_.end())
      it->second.rule = f.rule;
    else if (!policies_.empty())
      open_case(now_ns, f, resolve);
  }

  // A group fault's members change while it is open (a fork bomb breeds):
  // its actions act on who is in the group now.
  for (const FaultRecord& f : open)
    if (!f.group.empty())
      if (auto it = cases_.find({f.culprit, f.cls}); it != cases_.end()) it->second.target.group = f.group;

  // Open / resolve edges.
  for (auto& [key, c] : cases_) {
    const bool now_open = open_now.count(key) != 0;
    auto seen = seen_now.find(key);
    c.seen_ns = seen == seen_now.end() ? 0 : seen->second;
    if (c.open && !now_open) {
      c.open = c.want = c.escalate = c.exhausted = c.refused = c.stale_open = false;
      c.blocked = Block::None;
      c.touched_ns = now_ns;
    } else if (!c.open && now_open) {
      c.open = true;
      c.touched_ns = now_ns;
      if (c.watching)
        c.watch_reopened = true;
      else
        c.want = true;
    }
  }

  // Replacements of asynchronous restarts that have started since.
  std::vector<std::pair<CaseKey, ProcKey>> found;
  for (const auto& [key, c] : cases_)
    if (c.awaiting_replacement && c.watching)
      if (auto r = act_.replacement_of(key.first); r && *r != key.first) found.emplace_back(key, *r);
  for (const auto& [key, r] : found) {
    follow(now_ns, key, r);
    auto& c = cases_[CaseKey{r, key.second}];
    c.open = open_now.count({r, key.second}) != 0;
  }

  // A throttle evaded: its recovery check is due now (and fails).
  for (const ThrottleEvasion& e : act_.take_evasions()) evaded(now_ns, e);

  // Recovery checks that are due; they may ask for escalation.
  for (auto& [key, c] : cases_)
    if (c.watching && now_ns >= c.watch_until_ns) check_recovery(now_ns, c, key.second, out);

  // Actions: cases whose fault is open and that wait for one.
  std::vector<CaseKey> due;
  for (const auto& [key, c] : cases_)
    if (c.open && (c.want || c.escalate) && !c.watching && !c.exhausted && !c.refused) due.push_back(key);
  for (const CaseKey& key : due) attempt(now_ns, key, out);

  // Whether processes still run is asked at most once a second (a syscall
  // per throttled or remembered process).
  const bool sweep = now_ns >= next_sweep_ns_;
  if (sweep) next_sweep_ns_ = now_ns + kSweepNs;
  undo_throttles(now_ns, open_now, sweep, out);
  forget(now_ns, sweep);
  return out;
}

void Handler::open_case(uint64_t now_ns, const FaultRecord& f, TargetResolver& resolve) {
  Target t = resolve.resolve(f);
  t.key = f.culprit;  // the detector's identity is the one the actuator must re-check
  if (t.group.empty()) t.group = f.group;
  // A group fault may name a member that is gone by now (a fork bomb's
  // members come and go): a policy selects the group by what a live member
  // is (its exe, cgroup, unit, uid).
  if (!t.group.empty() && t.exe.empty() && t.cgroup.empty() && t.unit.empty()) {
    constexpr size_t kAsk = 8;  // the oldest first: the likeliest to be there still
    for (size_t i = 0; i < t.group.size() && i < kAsk; ++i) {
      FaultRecord m = f;
      m.culprit = t.group[i];
      m.comm.clear();
      Target mt = resolve.resolve(m);
      if (mt.exe.empty() && mt.cgroup.empty() && mt.unit.empty()) continue;
      t.exe = mt.exe;
      t.cgroup = mt.cgroup;
      t.unit = mt.unit;
      t.uid = mt.uid;
      if (t.comm.empty()) t.comm = mt.comm;
      break;
    }
  }
  const PolicyConfig* p = policy_for(t, f.cls);
  spdlog::debug("handler: {} fault on pid {} (comm {}, exe {}, cgroup {}, unit {}, {} group member(s)): {}",
                fault_class_name(f.cls), t.key.tgid, t.comm, t.exe, t.cgroup, t.unit, t.group.size(),
                p ? "policy " + p->name : std::string("no policy acts on it"));
  if (!p) return;  // alert only
  act_.remember(t);
  Case c;
  c.policy = p->name;
  c.rule = f.rule;
  c.target = std::move(t);
  c.touched_ns = now_ns;
  cases_.emplace(CaseKey{f.culprit, f.cls}, std::move(c));
}

void Handler::evaded(uint64_t now_ns, const ThrottleEvasion& e) {
  for (auto& [key, c] : cases_) {
    if (key.first != e.key || !c.acted || c.watch_action != ActionType::Throttle) continue;
    // Watching the throttle, or past its window with the fault (re)open:
    // either way the throttle did not hold it.
    if (!c.watching && !c.open) continue;
    c.watching = true;
    c.watch_until_ns = now_ns;
    c.watch_evaded = e.detail;
  }
}

void Handler::check_recovery(uint64_t now_ns, Case& c, FaultClass cls, HandlerOutput& out) {
  c.watching = false;
  const PolicyConfig* p = policy_named(c.policy);
  const auto* ladder = p ? p->ladder(cls) : nullptr;
  RecoveryRecord r;
  r.mono_ns = now_ns;
  r.cls = cls;
  r.rule = c.rule;
  r.policy = c.policy;
  r.target = c.target;
  r.action = c.watch_action;
  r.step = c.watch_step;
  const std::string window = c.watch_window_ns ? dur(c.watch_window_ns) : "the window";
  const std::string what = std::string(fault_class_name(cls)) + " fault";
  const std::string evaded = std::move(c.watch_evaded);
  c.watch_evaded.clear();
  // Open, but its condition has not held for a while: it only waits out the
  // rule's `clear` time, which may be longer than the window.
  const bool clearing = c.open && !c.watch_reopened && c.seen_ns != 0 && now_ns >= c.seen_ns + kClearingNs;
  const bool still = !evaded.empty() || (c.open && !c.stale_open && !clearing) || c.watch_reopened;
  if (!still && c.watch_replacement && !act_.alive(c.target.key)) {
    // Nothing to act on any more: the case ends here.
    r.recovered = false;
    r.detail = "the replacement (" + pid_text(c.target) + ") exited within " + window + " of the " +
               action_type_name(c.watch_action);
  } else if (!still && c.stale_open) {
    r.recovered = true;
    r.detail = "no new " + what + " " + window + " after the " + action_type_name(c.watch_action) +
               " (the replacement's pid is unknown)";
  } else if (!still && clearing && !c.stale_open) {
    r.recovered = true;
    r.detail = "the " + what + " on " + pid_text(c.target) + " has not held for " + dur(now_ns - c.seen_ns) +
               " (" + window + " after the " + action_type_name(c.watch_action) + "; it resolves after its clear time)";
  } else if (!still) {
    r.recovered = true;
    r.detail = "no " + what + " on " + pid_text(c.target) + " " + window + " after the " +
               action_type_name(c.watch_action);
  }
  // A restore that brought the fault back is tried again from what the
  // actuator falls back to (an older checkpoint, then a clean start) before
  // the ladder moves on: the checkpoint, not the rung, was what failed.
  std::optional<std::string> fallback;
  if (c.watch_action == ActionType::Restore && !c.watch_failed && (r.recovered || still))
    fallback = act_.restore_verdict(c.target, r.recovered);
  if (still) {
    r.recovered = false;
    const std::string why = !evaded.empty() ? "the throttle was evaded: " + evaded
                                            : what + (c.open ? " still open " : " reopened within ") + window +
                                                  " after the " + (c.watch_failed ? "failed " : "") +
                                                  action_type_name(c.watch_action);
    if (fallback && c.rung > 0) {
      r.detail = why + ": its checkpoint brought the fault back; restoring again from " + *fallback;
      c.rung -= 1;  // the same rung, from an older source
      c.escalate = true;
    } else if (!ladder || c.rung >= ladder->size()) {
      r.detail = evaded.empty() ? "ladder exhausted" : why + "; ladder exhausted";
      c.exhausted = c.open;  // while it stays open; a later reopening starts again from the last rung
    } else {
      r.detail = why + "; escalating to " + (*ladder)[c.rung].text;
      // An evasion escalates even if the fault has just cleared: the
      // process is out of the throttle's hold.
      c.escalate = true;
      if (!evaded.empty()) c.open = true;
    }
  }
  out.recoveries.push_back(std::move(r));
}

void Handler::attempt(uint64_t now_ns, CaseKey key, HandlerOutput& out) {
  // One rung per pass; a rung the actuator skips (cannot apply here) moves on
  // to the next at once, so the loop is bounded by the ladder's length.
  for (;;) {
    auto it = cases_.find(key);
    if (it == cases_.end()) return;
    Case& c = it->second;
    const FaultClass cls = key.second;
    const PolicyConfig* p = policy_named(c.policy);
    const auto* ladder = p ? p->ladder(cls) : nullptr;
    if (!ladder || ladder->empty()) {
      cases_.erase(it);
      return;
    }
    const size_t idx = std::min(c.rung, ladder->size() - 1);
    const LadderStep& step = (*ladder)[idx];
    const bool dry = global_dry_run_ || p->dry_run;

    ActionRecord rec;
    rec.mono_ns = now_ns;
    rec.cls = cls;
    rec.rule = c.rule;
    rec.policy = c.policy;
    rec.target = c.target;
    rec.type = step.type;
    rec.step = step.text;
    auto skip = [&](Block why, std::string detail) {
      if (why != Block::None && c.blocked == why) return;  // said so already; still waiting
      c.blocked = why;
      rec.outcome.result = ActionResult::Skipped;
      rec.outcome.detail = std::move(detail);
      out.actions.push_back(std::move(rec));
    };

    if (auto why = refuse_ ? refuse_(c.target) : std::nullopt) {
      skip(Block::None, "protected: " + *why);
      c.refused = true;
      return;
    }
    const uint64_t cooldown = static_cast<uint64_t>(p->cooldown.count());
    if (!c.escalate && c.acted && now_ns < c.last_action_ns + cooldown) {
      skip(Block::Cooldown, "cooldown: " + dur(c.last_action_ns + cooldown - now_ns) + " left of " +
                                dur(p->cooldown) + " after the last action on this process");
      return;
    }
    if (spent(now_ns, c.target.key) >= p->budget) {
      skip(Block::Budget, "budget: " + std::to_string(p->budget) +
                              " actions on this process in the last hour (policy " + c.policy + ")");
      return;
    }
    if (tokens_ < 1.0 - 1e-9) {  // (the refill is summed tick by tick in floating point)
      skip(Block::RateLimit, "global rate limit: " + std::to_string(per_minute_) + " actions per minute");
      return;
    }

    ActionOutcome o = perform(step, *p, c.target, dry);
    rec.outcome = o;
    out.actions.push_back(std::move(rec));
    c.blocked = Block::None;

    if (dry) {
      // Nothing happened: no throttle, no replacement, nothing to watch or
      // escalate. The cooldown keeps a fault that flaps from repeating it.
      c.acted = true;
      c.last_action_ns = now_ns;
      c.want = c.escalate = false;
      return;
    }
    if (o.result == ActionResult::Skipped || o.result == ActionResult::DryRun) {
      // The actuator could not apply this rung here (not a service, no
      // checkpoint, process gone ...): try the next one.
      c.rung = idx + 1;
      if (c.rung < ladder->size()) {
        c.escalate = true;
        continue;
      }
      c.want = c.escalate = false;
      c.exhausted = true;
      return;
    }

    // Ok or Failed: it counts, and its effect is checked after the window.
    tokens_ -= 1.0;
    spent_[c.target.key].push_back(now_ns);
    c.acted = true;
    c.last_action_ns = now_ns;
    c.touched_ns = now_ns;
    c.rung = idx + 1;
    c.want = c.escalate = false;
    c.watching = true;
    // A throttle leaves the process running: its fault clears only once the
    // evidence from before the throttle has left the rule's window (a 10 s
    // run-queue p99 cannot clear in a 10 s recovery_window). Restarts and
    // restores end the faulting process, and with it its fault.
    c.watch_window_ns = static_cast<uint64_t>(p->recovery_window.count());
    if (step.type == ActionType::Throttle)
      if (auto it = settle_ns_.find(c.rule); it != settle_ns_.end())
        c.watch_window_ns = std::max(c.watch_window_ns, it->second);
    c.watch_until_ns = now_ns + c.watch_window_ns;
    c.watch_action = step.type;
    c.watch_step = step.text;
    c.watch_reopened = false;
    c.watch_failed = o.result == ActionResult::Failed;
    c.watch_replacement = false;
    c.stale_open = false;
    if (o.result != ActionResult::Ok) return;

    if (step.type == ActionType::Throttle) {
      ThrottleLimits limits = merged_limits(c.target.key, step.limits);
      Throttle& th = throttles_[c.target.key];
      th.target = c.target;
      th.policy = c.policy;
      th.rule = c.rule;
      th.cls = cls;
      if (std::find(th.classes.begin(), th.classes.end(), cls) == th.classes.end()) th.classes.push_back(cls);
      th.limits = limits;
      th.clear = false;
      th.undo_now.clear();
    } else if (replaces(step.type) && o.new_key.tgid != 0 && o.new_key != key.first) {
      follow(now_ns, key, o.new_key);
    } else if (replaces(step.type) && FaultTracker::exit_is_the_fault(cls)) {
      // Replaced, but the actuator could not say by whom: the dead process's
      // fault stays open in the engine for a while and says nothing about the
      // replacement, so it must not count against the recovery.
      c.stale_open = c.open;
      c.awaiting_replacement = true;
    } else if (replaces(step.type)) {
      c.awaiting_replacement = true;  // asked for at every tick (on_tick) until it is there
    }
    return;
  }
}

// Follow the replacement: its faults continue this case, its budget is the
// one the old process had spent (a crash loop must not reset it).
void Handler::follow(uint64_t now_ns, const CaseKey& key, const ProcKey& replacement) {
  auto it = cases_.find(key);
  if (it == cases_.end()) return;
  Case moved = std::move(it->second);
  cases_.erase(it);
  moved.target.key = replacement;
  moved.open = false;
  moved.stale_open = false;
  moved.awaiting_replacement = false;
  moved.watch_replacement = true;
  cases_.insert_or_assign(CaseKey{replacement, key.second}, std::move(moved));
  if (auto s = spent_.find(key.first); s != spent_.end()) {
    std::deque<uint64_t> times = s->second;
    auto& dst = spent_[replacement];
    dst.insert(dst.begin(), times.begin(), times.end());
    std::sort(dst.begin(), dst.end());
  }
  restarted_[replacement] = now_ns;
}

// A replacement's key comes from /proc (its start time to a clock tick), the
// detector's from the kernel (to the ns): one process under two keys. Without
// this, the replacement's first fault would open a second case, start the
// ladder over from its first rung, and the restore would never be judged
// (its check would see the replacement "exit", not the fault come back). The
// case, its budget and its restart time take the detector's key.
void Handler::align_key(const ProcKey& k, FaultClass cls) {
  if (cases_.count({k, cls}) != 0) return;
  auto it = std::find_if(cases_.begin(), cases_.end(), [&](const auto& kv) {
    const ProcKey& old = kv.first.first;
    return kv.first.second == cls && old.tgid == k.tgid && old != k && restarted_.count(old) != 0 &&
           same_start(k.start_ns, old.start_ns);
  });
  if (it == cases_.end()) return;
  const ProcKey old = it->first.first;
  Case moved = std::move(it->second);
  cases_.erase(it);
  moved.target.key = k;
  cases_.insert_or_assign(CaseKey{k, cls}, std::move(moved));
  if (auto s = spent_.extract(old)) {
    s.key() = k;
    spent_.insert(std::move(s));
  }
  if (auto r = restarted_.extract(old)) {
    r.key() = k;
    restarted_.insert(std::move(r));
  }
}

ActionOutcome Handler::perform(const LadderStep& step, const PolicyConfig& p, const Target& t, bool dry_run) {
  // A restart of a user unit goes through that user's manager, and only when
  // the policy says it covers user units (a [[service]] is ours, not systemd's).
  if (step.type == ActionType::Restart && t.unit_user && t.service.empty() && !p.user_units)
    return ActionOutcome{ActionResult::Skipped,
                         t.unit + " is a unit of uid " + std::to_string(*t.unit_user) +
                             "'s own systemd manager, and policy " + p.name +
                             " does not say user_units = true: not restarted",
                         {}};
  switch (step.type) {
    case ActionType::Throttle: return act_.throttle(t, merged_limits(t.key, step.limits), dry_run);
    case ActionType::Unthrottle: return act_.unthrottle(t, dry_run);
    case ActionType::Restart: return act_.restart(t, dry_run);
    case ActionType::Restore: return act_.restore(t, dry_run);
    case ActionType::Kill: return act_.kill(t, dry_run);
  }
  return ActionOutcome{ActionResult::Skipped, "unknown action", {}};
}

// The limits in place stay unless the step changes them (a second class's
// throttle adds to the first): an actuator may take a throttle as "exactly these".
ThrottleLimits Handler::merged_limits(const ProcKey& k, const ThrottleLimits& step) const {
  ThrottleLimits limits = step;
  if (auto th = throttles_.find(k); th != throttles_.end()) {
    const ThrottleLimits& old = th->second.limits;
    if (!limits.cpu_share) limits.cpu_share = old.cpu_share;
    if (!limits.memory_bytes) limits.memory_bytes = old.memory_bytes;
    if (!limits.io_bps) limits.io_bps = old.io_bps;
    if (!limits.pids) limits.pids = old.pids;
  }
  return limits;
}

ActionRecord Handler::unthrottle(uint64_t now_ns, const Throttle& th, const std::string& why) {
  ActionRecord rec;
  rec.mono_ns = now_ns;
  rec.cls = th.cls;
  rec.rule = th.rule;
  rec.policy = th.policy;
  rec.target = th.target;
  rec.type = ActionType::Unthrottle;
  // Undoing is always real: the throttle was (a dry run never leaves one).
  rec.outcome = act_.unthrottle(th.target, false);
  rec.outcome.detail = rec.outcome.detail.empty() ? why : why + ": " + rec.outcome.detail;
  return rec;
}

void Handler::adopt_throttle(const Target& t, uint64_t now_ns) {
  Throttle& th = throttles_[t.key];
  th.target = t;
  const PolicyConfig* p = policy_for(t);
  th.policy = p ? p->name : "";
  th.rule = "(previous run)";
  th.classes.assign(std::begin(kAllFaultClasses), std::end(kAllFaultClasses));
  th.cls = FaultClass::CpuRunaway;
  for (FaultClass c : kAllFaultClasses)
    if (p && p->ladder(c)) {
      th.cls = c;
      break;
    }
  th.clear = false;
  th.clear_since_ns = now_ns;
}

void Handler::undo_throttles(uint64_t now_ns, const std::map<CaseKey, bool>& open, bool sweep,
                             HandlerOutput& out) {
  for (auto it = throttles_.begin(); it != throttles_.end();) {
    Throttle& th = it->second;
    std::string why;
    bool drop_anyway = false;  // no point retrying a failed undo
    if (!th.undo_now.empty()) {
      why = th.undo_now;
      drop_anyway = true;
    } else if (sweep && !act_.alive(it->first)) {
      why = "process exited";  // the actuator cleans up what it made for it
      drop_anyway = true;
    } else {
      const bool any_open = std::any_of(th.classes.begin(), th.classes.end(),
                                        [&](FaultClass c) { return open.count({it->first, c}) != 0; });
      if (any_open) {
        th.clear = false;
      } else if (!th.clear) {
        th.clear = true;
        th.clear_since_ns = now_ns;
      }
      const PolicyConfig* p = policy_named(th.policy);
      const uint64_t cooldown = p ? static_cast<uint64_t>(p->cooldown.count()) : 0;
      if (th.clear && now_ns >= th.clear_since_ns + cooldown)
        why = "fault clear for " + dur(cooldown);
    }
    if (why.empty()) {
      ++it;
      continue;
    }
    ActionRecord rec = unthrottle(now_ns, th, why);
    const bool failed = rec.outcome.result == ActionResult::Failed;
    out.actions.push_back(std::move(rec));
    if (failed && !drop_anyway) {
      th.clear_since_ns = now_ns;  // try again after another cooldown, not every tick
      ++it;
    } else {
      it = throttles_.erase(it);
    }
  }
}

// Drops what no longer matters: cases idle for an hour or whose process is
// gone (and not being watched), spent budgets, old replacements.
void Handler::forget(uint64_t now_ns, bool sweep) {
  for (auto it = cases_.begin(); it != cases_.end();) {
    const Case& c = it->second;
    bool drop = false;
    if (!c.open && !c.watching) {
      drop = now_ns >= c.touched_ns + kMemoryNs ||
             (sweep && throttles_.count(it->first.first) == 0 && !act_.alive(it->first.first));
    }
    it = drop ? cases_.erase(it) : std::next(it);
  }
  for (auto it = spent_.begin(); it != spent_.end();)
    it = spent(now_ns, it->first) == 0 ? spent_.erase(it) : std::next(it);
  for (auto it = restarted_.begin(); it != restarted_.end();)
    it = now_ns >= it->second + kMemoryNs ? restarted_.erase(it) : std::next(it);
}

HandlerOutput Handler::shutdown(uint64_t now_ns) {
  HandlerOutput out;
  for (const auto& [key, th] : throttles_) out.actions.push_back(unthrottle(now_ns, th, "faultprobed stopping"));
  throttles_.clear();
  cases_.clear();
  return out;
}

}  // namespace fp
