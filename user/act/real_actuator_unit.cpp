// RealActuator's throttles of systemd units' processes: through systemd
// (act/unit_throttle.h), with the systemctl calls on the action worker.
#include <spdlog/spdlog.h>

#include "act/real_actuator.h"

namespace fp {
namespace {

std::string who(const Target& t) { return t.comm + " (pid " + std::to_string(t.key.tgid) + ")"; }

std::string manager(std::optional<uint32_t> user) {
  return user ? "systemctl --user -M " + std::to_string(*user) + "@" : std::string("systemctl");
}

}  // namespace

bool RealActuator::by_unit(const Target& t) const {
  return d_.unit_throttle && !t.unit.empty() && valid_unit_name(t.unit) && d_.systemd && d_.systemd->available();
}

ActionOutcome RealActuator::throttle_unit(const Target& t, const ThrottleLimits& limits, bool dry_run) {
  std::string what = manager(t.unit_user) + " set-property --runtime " + t.unit;
  for (const auto& a : UnitThrottle::assignments(limits, d_.unit_throttle->io_devices())) what += " " + a;
  const std::string scope = " (unit-wide: it also limits the other processes of " + t.unit + ")";
  if (dry_run) return {ActionResult::DryRun, "would " + what + scope, {}, {}};
  // Only the identity is checked here: systemd acts on the unit, not on a pid.
  auto h = ProcessHandle::open(t.key, d_.proc_root);
  if (!h) return {ActionResult::Failed, h.error().message, {}, {}};
  UnitThrottle& ut = *d_.unit_throttle;
  auto call = [&ut, key = t.key, unit = t.unit, user = t.unit_user, limits] {
    return ut.apply(key, unit, user, limits);
  };
  if (d_.worker == nullptr) {
    auto r = call();
    if (!r) return {ActionResult::Failed, what + ": " + r.error().message, {}, {}};
    return {ActionResult::Ok, *r, {}, {}};
  }
  ut.claim(t.key);
  auto job = [this, call, key = t.key, what]() -> ActionWorker::Apply {
    auto r = call();
    return [this, r = std::move(r), key, what] {
      if (r) return;
      spdlog::error("throttle: {} failed: {}", what, r.error().message);
      unit_failures_.push_back(ThrottleEvasion{key, what + " failed: " + r.error().message});
    };
  };
  auto on_error = [this, key = t.key, what](const std::string& why) {
    d_.unit_throttle->unclaim(key);
    unit_failures_.push_back(ThrottleEvasion{key, what + ": " + why});
  };
  switch (d_.worker->submit("unit " + t.unit, what, std::move(job), std::move(on_error))) {
    case ActionWorker::Submitted::Queued:
      return {ActionResult::Ok, what + scope + ": queued, runs off the sampling loop", {}, {}};
    case ActionWorker::Submitted::Busy:
      ut.unclaim(t.key);
      return {ActionResult::Skipped, "a systemd call on " + t.unit + " is still under way", {}, {}};
    case ActionWorker::Submitted::Full:
      ut.unclaim(t.key);
      return {ActionResult::Failed, what + ": the action queue is full", {}, {}};
    case ActionWorker::Submitted::Stopped: break;
  }
  ut.unclaim(t.key);
  return {ActionResult::Failed, what + ": the daemon is stopping", {}, {}};
}

ActionOutcome RealActuator::unthrottle_unit(const Target& t, bool dry_run) {
  UnitThrottle& ut = *d_.unit_throttle;
  auto e = ut.entry(t.key);
  const std::string unit = e ? e->unit : t.unit;
  const std::string what = "restore the properties of " + unit + " from before the throttle of " + who(t);
  if (dry_run) return {ActionResult::DryRun, "would " + what, {}, {}};
  auto call = [&ut, key = t.key] { return ut.release(key); };
  if (d_.worker == nullptr) {
    auto r = call();
    if (!r) return {ActionResult::Failed, r.error().message, {}, {}};
    return {ActionResult::Ok, *r, {}, {}};
  }
  auto job = [call, what]() -> ActionWorker::Apply {
    auto r = call();
    return [r = std::move(r), what] {
      if (r)
        spdlog::info("throttle: {}", r.value());
      else
        spdlog::error("throttle: {} failed: {}", what, r.error().message);
    };
  };
  auto on_error = [what](const std::string& why) { spdlog::error("throttle: {}: {}", what, why); };
  // Its own target: queued behind the apply (one worker, first in first
  // out) rather than refused while that one is under way.
  const std::string target = "unit release " + std::to_string(t.key.tgid) + "-" + std::to_string(t.key.start_ns);
  switch (d_.worker->submit(target, what, std::move(job), std::move(on_error))) {
    case ActionWorker::Submitted::Queued:
      return {ActionResult::Ok, what + ": queued, runs off the sampling loop", {}, {}};
    case ActionWorker::Submitted::Busy: return {ActionResult::Skipped, "its release is already queued", {}, {}};
    case ActionWorker::Submitted::Full: return {ActionResult::Failed, what + ": the action queue is full", {}, {}};
    case ActionWorker::Submitted::Stopped: break;
  }
  // The worker is gone (shutdown): undo it here, the loop has nothing left to sample.
  auto r = call();
  if (!r) return {ActionResult::Failed, r.error().message, {}, {}};
  return {ActionResult::Ok, *r, {}, {}};
}

std::vector<ThrottleEvasion> RealActuator::take_evasions() {
  std::vector<ThrottleEvasion> out;
  out.swap(unit_failures_);
  if (d_.throttle)
    for (auto& e : d_.throttle->take_evasions()) out.push_back(std::move(e));
  return out;
}

}  // namespace fp
