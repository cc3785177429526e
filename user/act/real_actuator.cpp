#include "act/real_actuator.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "act/process_group.h"
#include "act/spawn.h"

namespace fp {
namespace {

ActionOutcome ok(std::string detail, ProcKey new_key = {}) {
  return ActionOutcome{ActionResult::Ok, std::move(detail), new_key};
}
ActionOutcome failed(std::string detail) { return ActionOutcome{ActionResult::Failed, std::move(detail), {}}; }
ActionOutcome skipped(std::string detail) { return ActionOutcome{ActionResult::Skipped, std::move(detail), {}}; }
ActionOutcome dry(std::string detail) { return ActionOutcome{ActionResult::DryRun, "would " + detail, {}}; }

std::string describe_limits(const ThrottleLimits& l) {
  std::ostringstream o;
  const char* sep = "";
  if (l.cpu_share) {
    o << sep << "cpu=" << *l.cpu_share * 100 << "%";
    sep = ",";
  }
  if (l.memory_bytes) {
    o << sep << "memory=" << *l.memory_bytes;
    sep = ",";
  }
  if (l.io_bps) {
    o << sep << "io=" << *l.io_bps << "B/s";
    sep = ",";
  }
  if (l.pids) o << sep << "pids=" << *l.pids;
  return o.str();
}

std::string who(const Target& t) { return t.comm + " (pid " + std::to_string(t.key.tgid) + ")"; }

}  // namespace

// A live process goes through every check; a dead one (crash, OOM kill) only
// through its name: there is nothing left to hit by mistake.
std::optional<std::string> RealActuator::refuse(const Target& t) const {
  if (!d_.safety) return std::nullopt;
  if (!process_alive(t.key)) return d_.safety->refuse_gone(t.key, t.comm);
  return d_.safety->refuse(t.key, t.comm);
}

RefuseFn RealActuator::member_check() const {
  return [this](const ProcKey& k, std::string_view comm) {
    return d_.safety ? d_.safety->refuse(k, comm) : std::nullopt;
  };
}

// The members a group action starts from: the detector's list and the
// process the fault names (when it is still there).
std::vector<ProcKey> RealActuator::seeds_of(const Target& t) {
  std::vector<ProcKey> seeds = t.group;
  if (std::find(seeds.begin(), seeds.end(), t.key) == seeds.end()) seeds.push_back(t.key);
  return seeds;
}

ActionOutcome RealActuator::throttle_group(const Target& t, const ThrottleLimits& limits) {
  // Stopped first, so no member forks a child outside the group while they move.
  auto g = stop_group(seeds_of(t), d_.proc_root, member_check());
  if (!g) return failed(g.error().message);
  const bool named_in = std::any_of(g->members.begin(), g->members.end(), [&](const auto& m) { return m.key() == t.key; });
  if (!named_in) {
    continue_group(*g);
    return failed(who(t) + " exited before its group was stopped");
  }
  std::vector<pid_t> pids;
  for (const auto& m : g->members) pids.push_back(pid_t(m.key().tgid));
  // The one the fault names is throttled as any process; the others join it.
  auto r = d_.throttle->throttle(t.key, limits);
  Result<std::string> joined = r ? d_.throttle->add_members(t.key, pids) : Result<std::string>(r.error());
  if (r && !joined) (void)d_.throttle->release(t.key);  // half a group held is no throttle of the group
  continue_group(*g);
  if (!r) return failed(r.error().message);
  if (!joined) return failed(joined.error().message);
  return ok(*r + "; " + *joined + " (" + std::to_string(g->members.size()) + " stopped in " +
            std::to_string(g->rounds) + " round(s)" + (g->converged ? "" : ", not converged") + ")");
}

std::optional<std::string> RealActuator::service_of(const Target& t) const {
  if (!t.service.empty()) return t.service;
  if (!d_.supervisor) return std::nullopt;
  if (auto s = d_.supervisor->service_of(t.key.tgid)) return s;
  if (d_.ancestors)
    for (uint32_t a : d_.ancestors(t.key.tgid))
      if (auto s = d_.supervisor->service_of(a)) return s;
  return std::nullopt;
}

ActionOutcome RealActuator::throttle(const Target& t, const ThrottleLimits& limits, bool dry_run) {
  if (by_unit(t)) {
    // systemd owns the unit's cgroups: a limit written there behind its back
    // does not survive its next daemon-reload.
    if (auto r = refuse(t)) return skipped(*r);
    return throttle_unit(t, limits, dry_run);
  }
  if (!d_.throttle) return failed("no throttle backend: " + d_.throttle_why);
  std::string why;
  if (!d_.throttle->supports(limits, &why)) return failed(std::string(d_.throttle->name()) + " cannot: " + why);
  if (auto r = refuse(t)) return skipped(*r);
  if (!t.group.empty()) {
    if (dry_run)
      return dry("stop the fork group of " + who(t) + " (" + describe_group(seeds_of(t), d_.proc_root) +
                 ") and throttle it to " + describe_limits(limits) + " (" + d_.throttle->name() + ")");
    return throttle_group(t, limits);
  }
  if (dry_run)
    return dry("throttle " + who(t) + " to " + describe_limits(limits) + " (" + d_.throttle->name() + ")");
  // The pidfd pins the process while we check it is the one the probe saw.
  // The race that remains: cgroup.procs takes a pid, not a pidfd (the kernel
  // moves existing processes by pid only), so the backend writes the pid
  // after this check. Should the process exit, be reaped by its parent and
  // its pid be reused by another process in between (a full pid wrap within
  // microseconds), that process would be moved instead: into a group below
  // the same parent (throttle in place), so under the same limits as before.
  auto h = ProcessHandle::open(t.key, d_.proc_root);
  if (!h) return failed(h.error().message);
  auto r = d_.throttle->throttle(t.key, limits);
  if (!r) return failed(r.error().message);
  return ok(*r);
}

ActionOutcome RealActuator::unthrottle(const Target& t, bool dry_run) {
  if (d_.unit_throttle && d_.unit_throttle->throttled(t.key)) return unthrottle_unit(t, dry_run);
  if (!d_.throttle) return failed("no throttle backend: " + d_.throttle_why);
  if (!d_.throttle->throttled(t.key)) return skipped(who(t) + " is not throttled");
  if (dry_run) return dry("move " + who(t) + " back to its cgroup");
  auto r = d_.throttle->release(t.key);
  if (!r) return failed(r.error().message);
  return ok(*r);
}

ActionOutcome RealActuator::systemd_call(const std::string& unit, const std::string& what,
                                         std::function<Result<std::string>()> call) {
  if (d_.worker == nullptr) {
    auto r = call();
    if (!r) return failed(r.error().message);
    return ok(*r);
  }
  auto job = [call = std::move(call), what]() -> ActionWorker::Apply {
    auto r = call();
    return [r = std::move(r), what] {
      if (!r) spdlog::error("systemd: {} failed: {}", what, r.error().message);
    };
  };
  auto on_error = [what](const std::string& why) { spdlog::error("systemd: {}: {}", what, why); };
  switch (d_.worker->submit("unit " + unit, what, std::move(job), std::move(on_error))) {
    case ActionWorker::Submitted::Queued: return ok(what + ": queued, runs off the sampling loop");
    case ActionWorker::Submitted::Busy: return skipped("a systemd call on " + unit + " is still under way");
    case ActionWorker::Submitted::Full: return failed(what + ": the action queue is full");
    case ActionWorker::Submitted::Stopped: break;
  }
  return failed(what + ": the daemon is stopping");
}

ActionOutcome RealActuator::restart_service(const std::string& name, const Target& t, bool from_checkpoint,
                                            bool dry_run) {
  (void)t;
  // Asynchronous: the replacement starts once the old process is gone (see
  // replacement_of); a service that was already down starts at once.
  ActionOutcome o = d_.supervisor->restart(name, from_checkpoint, dry_run);
  if (o.result == ActionResult::Ok) {
    for (const auto& s : d_.supervisor->status())
      if (s.name == name && s.pid > 0 && uint32_t(s.pid) != t.key.tgid)
        if (auto k = d_.probe_key ? d_.probe_key(uint32_t(s.pid)) : std::nullopt) o.new_key = *k;
  }
  return o;
}

ActionOutcome RealActuator::restart(const Target& t, bool dry_run) {
  if (auto r = refuse(t)) return skipped(*r);
  if (auto svc = service_of(t)) return restart_service(*svc, t, false, dry_run);
  if (!t.unit.empty() && d_.systemd && d_.systemd->available()) {
    // A user unit only ever through its own manager: `systemctl restart` of
    // its name would restart the *system* unit that has it.
    if (t.unit_user) {
      const std::string uid = std::to_string(*t.unit_user);
      if (dry_run) return dry("systemctl --user -M " + uid + "@ restart " + t.unit);
      const uint32_t user = *t.unit_user;
      return systemd_call(t.unit, "systemctl --user -M " + uid + "@ restart " + t.unit,
                          [this, unit = t.unit, user] { return d_.systemd->restart_user_unit(unit, user); });
    }
    if (dry_run) return dry("systemctl restart " + t.unit);
    return systemd_call(t.unit, "systemctl restart " + t.unit,
                        [this, unit = t.unit] { return d_.systemd->restart(unit); });
  }
  // Respawn: the same argv, cwd, environment and user, captured while it ran.
  const SpawnSpec* spec = d_.respawn ? d_.respawn->find(t.key) : nullptr;
  if (!spec) {
    auto why = d_.respawn ? d_.respawn->failure(t.key) : std::nullopt;
    return failed("not a service, not in a systemd unit, and its command line " +
                  (why ? "could not be captured: " + *why : std::string("was not captured while it ran")));
  }
  std::string argv0 = spec->argv.empty() ? "?" : spec->argv[0];
  if (dry_run) return dry("terminate " + who(t) + " and respawn " + argv0);
  if (pending_.count(t.key)) return skipped(who(t) + " is already being respawned");
  if (alive(t.key)) {
    // Asynchronous, like a service restart: the loop must not wait out a
    // grace period (six processes ignoring SIGTERM would stall it for 30 s).
    auto h = ProcessHandle::open(t.key, d_.proc_root);
    if (!h) return failed(h.error().message);
    if (!h->exited()) {
      if (auto r = h->signal(SIGTERM); !r && r.error().code != ESRCH) return failed(r.error().message);
      (void)h->signal(SIGCONT);  // a stopped process acts on SIGTERM only once continued
      pending_.emplace(t.key, PendingRespawn{std::move(h).value(), *spec, 0, 0});
      d_.respawn->forget(t.key);
      return ok("SIGTERM sent to " + who(t) + " (SIGKILL after " + std::to_string(d_.grace.count()) +
                " ms); " + argv0 + " is respawned once it is gone");
    }
  }
  SpawnSpec copy = *spec;
  d_.respawn->forget(t.key);
  std::string detail;
  auto nk = spawn_replacement(t.key, copy, &detail);
  if (!nk) return failed(who(t) + " had already exited; respawn failed: " + nk.error().message);
  replacements_.erase(t.key);  // the handler follows new_key at once
  return ok(who(t) + " had already exited; " + detail, *nk);
}

// Starts the replacement: under systemd as a transient unit (systemd forks
// it, so nothing of this unit's sandbox reaches it), else as our child (kept
// for reaping). Recorded as old's replacement.
Result<ProcKey> RealActuator::spawn_replacement(const ProcKey& old, const SpawnSpec& spec, std::string* detail) {
  const std::string argv0 = spec.argv.empty() ? "?" : spec.argv[0];
  if (d_.under_systemd && d_.systemd && d_.systemd->available()) {
    const std::string unit =
        "faultprobe-respawn-" + std::to_string(old.tgid) + "-" + std::to_string(++transient_seq_) + ".service";
    if (auto a = SystemdControl::transient_argv(unit, spec); !a) return a.error();  // refused now, not later
    ActionOutcome o = systemd_call(unit, "systemd-run --unit=" + unit + " -- " + argv0,
                                   [this, unit, spec] { return d_.systemd->start_transient(unit, spec); });
    if (o.result != ActionResult::Ok) return Error{EIO, o.detail};
    *detail = "respawned " + argv0 + " as " + unit + (d_.worker ? " (queued)" : "");
    // Its pid is systemd's to know; the handler follows the fault's exit instead.
    return ProcKey{};
  }
  auto s = spawn_process(spec);
  if (!s) return s.error();
  if (!s->warning.empty()) spdlog::warn("respawn of {}: {}", argv0, s->warning);
  ProcKey nk = s->key;
  if (auto st = process_start_ns(s->pid, d_.proc_root)) nk.start_ns = *st;
  nk.tgid = uint32_t(s->pid);
  if (d_.probe_key)
    if (auto k = d_.probe_key(nk.tgid)) nk = *k;
  children_[s->pid] = s->pidfd;
  replacements_[old] = nk;
  *detail = "respawned " + argv0 + " as pid " + std::to_string(s->pid) +
            (s->warning.empty() ? "" : " (" + s->warning + ")");
  return nk;
}

void RealActuator::advance_respawns(uint64_t now_ns) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    PendingRespawn& p = it->second;
    const std::string who_old = "pid " + std::to_string(it->first.tgid);
    if (p.kill_at_ns == 0) p.kill_at_ns = now_ns + uint64_t(d_.grace.count()) * 1'000'000ull;
    if (p.old.exited()) {
      std::string detail;
      if (auto r = spawn_replacement(it->first, p.spec, &detail); r)
        spdlog::info("{} is gone; {}", who_old, detail);
      else
        spdlog::error("{} is gone; respawn failed: {}", who_old, r.error().message);
      it = pending_.erase(it);
      continue;
    }
    if (p.give_up_ns == 0 && now_ns >= p.kill_at_ns) {
      spdlog::warn("{} ignored SIGTERM for {} ms; SIGKILL", who_old, d_.grace.count());
      (void)p.old.signal(SIGKILL);
      p.give_up_ns = now_ns + uint64_t(ProcessHandle::kKillWait.count()) * 1'000'000ull;
    } else if (p.give_up_ns != 0 && now_ns >= p.give_up_ns) {
      spdlog::error("{} still runs {} ms after SIGKILL (uninterruptible sleep?): not respawned", who_old,
                    ProcessHandle::kKillWait.count());
      it = pending_.erase(it);
      continue;
    }
    ++it;
  }
}

void RealActuator::reap_children() {
  for (auto it = children_.begin(); it != children_.end();) {
    siginfo_t info{};
    // P_PIDFD (3): waits for exactly this child; WNOHANG never blocks the loop.
    if (waitid(static_cast<idtype_t>(3), static_cast<id_t>(it->second), &info, WEXITED | WNOHANG) == 0 &&
        info.si_pid == 0) {
      ++it;  // still running
      continue;
    }
    close(it->second);
    it = children_.erase(it);
  }
}

ActionOutcome RealActuator::restore(const Target& t, bool dry_run) {
  auto svc = service_of(t);
  if (!svc) return failed("restore needs a [[service]] with a checkpoint; " + who(t) + " is not one");
  for (const auto& s : d_.supervisor->status())
    if (s.name == *svc && s.checkpoint_backend == "none")
      return failed("service " + *svc + " has no checkpoint configured");
  if (auto r = refuse(t)) return skipped(*r);
  return restart_service(*svc, t, true, dry_run);
}

ActionOutcome RealActuator::kill(const Target& t, bool dry_run) {
  if (!t.group.empty()) {
    // The one the fault names may be gone (a bomb's members come and go):
    // the group is still there, and each member goes through the safety check.
    if (process_alive(t.key))
      if (auto r = refuse(t)) return skipped(*r);
    if (dry_run)
      return dry("stop and SIGKILL the fork group of " + who(t) + ": " + describe_group(seeds_of(t), d_.proc_root) +
                 ", with the children and reparented generations found meanwhile");
    auto r = kill_group(seeds_of(t), d_.proc_root, member_check());
    if (!r) return failed(r.error().message);
    return ok(*r);
  }
  if (auto r = refuse(t)) return skipped(*r);
  if (dry_run) return dry("SIGKILL " + who(t) + " and its descendants");
  auto r = kill_tree(t.key, d_.proc_root, member_check(), d_.stops);
  if (!r) return failed(r.error().message);
  return ok(*r);
}

void RealActuator::remember(const Target& t) {
  if (d_.respawn && !service_of(t)) d_.respawn->remember(t.key);
}

std::optional<ProcKey> RealActuator::replacement_of(const ProcKey& old) {
  if (auto it = replacements_.find(old); it != replacements_.end()) {
    ProcKey k = it->second;
    // The probe's spelling of its start time, once the probe has seen it.
    if (d_.probe_key)
      if (auto pk = d_.probe_key(k.tgid)) k = *pk;
    replacements_.erase(it);
    return k;
  }
  if (!d_.supervisor || !d_.probe_key) return std::nullopt;
  auto name = d_.supervisor->service_of(old.tgid);
  if (!name) return std::nullopt;
  for (const auto& s : d_.supervisor->status())
    if (s.name == *name && s.pid > 0 && uint32_t(s.pid) != old.tgid) return d_.probe_key(uint32_t(s.pid));
  return std::nullopt;
}

std::optional<std::string> RealActuator::restore_verdict(const Target& t, bool held) {
  if (!d_.supervisor) return std::nullopt;
  auto svc = service_of(t);
  if (!svc) return std::nullopt;
  return d_.supervisor->restore_verdict(*svc, held);
}

void RealActuator::note_open_faults(const std::vector<FaultRecord>& open) {
  if (!d_.supervisor) return;
  std::set<std::string> faulty;
  for (const FaultRecord& f : open) {
    // A dead process's fault (a crash stays open for its clear period) says
    // nothing about the state of the replacement that checkpoints now.
    if (f.culprit.tgid == 0 || !process_alive(f.culprit)) continue;
    Target t;
    t.key = f.culprit;
    if (auto svc = service_of(t)) faulty.insert(*svc);
  }
  d_.supervisor->set_faulty(faulty);
}

bool RealActuator::process_alive(const ProcKey& k) const {
  auto st = process_start_ns(pid_t(k.tgid), d_.proc_root);
  return st && same_start(k.start_ns, *st);
}

bool RealActuator::alive(const ProcKey& k) {
  // A group throttle lives on while its group does, whoever it was named after.
  return process_alive(k) || (d_.throttle && d_.throttle->throttled(k) && d_.throttle->members_left(k));
}

RealActuator::~RealActuator() {
  for (const auto& [pid, fd] : children_) close(fd);
}

void RealActuator::tick(uint64_t now_ns) {
  advance_respawns(now_ns);
  reap_children();
  if (d_.throttle && d_.throttle->next_deadline_ns() <= now_ns) d_.throttle->tick(now_ns);
  if (d_.supervisor) d_.supervisor->tick(now_ns);
}

}  // namespace fp
