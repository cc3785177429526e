// The side effects of handling, behind one interface: the handler decides,
// an Actuator does. Tests use a fake; the daemon uses RealActuator (cgroups,
// signals through pidfds, the supervisor, systemd, respawn).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "act/action.h"
#include "act/throttle.h"

namespace fp {

class Actuator {
 public:
  virtual ~Actuator() = default;
  // Each returns Ok with what was done, Failed / Skipped with why, or DryRun
  // with what would have been done (and changes nothing) when dry_run.
  // Implementations re-check the target's identity (pid + start time) and
  // refuse a process that is not the one the detector saw.
  virtual ActionOutcome throttle(const Target& t, const ThrottleLimits& limits, bool dry_run) = 0;
  virtual ActionOutcome unthrottle(const Target& t, bool dry_run) = 0;
  // Restart: a [[service]] through the supervisor, a systemd unit's process
  // through systemd, any other process by respawning it with the argv, cwd,
  // environment and user it had (captured by remember()).
  virtual ActionOutcome restart(const Target& t, bool dry_run) = 0;
  // Restart from the newest checkpoint (CRIU or application-assisted).
  virtual ActionOutcome restore(const Target& t, bool dry_run) = 0;
  // SIGKILL to the process and its descendants.
  virtual ActionOutcome kill(const Target& t, bool dry_run) = 0;

  // A process a policy could act on was seen: capture what a respawn needs
  // while it is alive (a crashed process cannot be asked afterwards).
  virtual void remember(const Target& t) { (void)t; }
  // The process that replaced `old` after an asynchronous restart/restore
  // (a supervised service starts its replacement only once the old one has
  // gone), as the probe knows it; nullopt while there is none yet.
  virtual std::optional<ProcKey> replacement_of(const ProcKey& old) {
    (void)old;
    return std::nullopt;
  }
  // Whether the process still runs (same pid and start time).
  virtual bool alive(const ProcKey& k) = 0;
  // Periodic work (duty cycles, supervisor restarts, checkpoint schedules).
  virtual void tick(uint64_t now_ns) { (void)now_ns; }
  // Throttled processes that escaped their throttle since the last call.
  virtual std::vector<ThrottleEvasion> take_evasions() { return {}; }
};

}  // namespace fp
