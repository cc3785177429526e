// The daemon's Actuator: every action through the safety checks and pidfds,
// throttles through the chosen cgroup (or signal) backend, restarts through
// the supervisor ([[service]]s), systemd (unit processes) or a respawn of
// the captured argv/cwd/env/user (anything else). A target with a group
// (fork_bomb) is killed or throttled as a whole (act/process_group.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "act/actuator.h"
#include "act/process.h"
#include "act/respawn.h"
#include "act/safety.h"
#include "act/supervisor.h"
#include "act/systemd.h"
#include "act/throttle.h"

namespace fp {

struct RealActuatorDeps {
  ThrottleBackend* throttle = nullptr;  // nullptr: throttling unavailable (reason in throttle_why)
  std::string throttle_why;
  SafetyGuard* safety = nullptr;
  Supervisor* supervisor = nullptr;
  SystemdControl* systemd = nullptr;
  RespawnRegistry* respawn = nullptr;
  std::string proc_root = "/proc";
  std::chrono::milliseconds grace{5000};  // SIGTERM -> SIGKILL for non-service restarts
  // The parent chain of a pid, nearest first (for "is this a service's child").
  std::function<std::vector<uint32_t>(uint32_t)> ancestors;
  // The probe's identity of a live pid (its start time as the probe has it,
  // which /proc only gives to a clock tick), nullopt if the probe has none.
  std::function<std::optional<ProcKey>(uint32_t)> probe_key;
};

class RealActuator : public Actuator {
 public:
  explicit RealActuator(RealActuatorDeps deps) : d_(std::move(deps)) {}

  ActionOutcome throttle(const Target& t, const ThrottleLimits& limits, bool dry_run) override;
  ActionOutcome unthrottle(const Target& t, bool dry_run) override;
  ActionOutcome restart(const Target& t, bool dry_run) override;
  ActionOutcome restore(const Target& t, bool dry_run) override;
  ActionOutcome kill(const Target& t, bool dry_run) override;
  void remember(const Target& t) override;
  bool alive(const ProcKey& k) override;
  std::optional<ProcKey> replacement_of(const ProcKey& old) override;
  std::optional<std::string> restore_verdict(const Target& t, bool held) override;
  // The faults open now: a [[service]] with one on its running process (or a
  // live descendant) is faulty, and the checkpoints it takes meanwhile are suspect.
  void note_open_faults(const std::vector<FaultRecord>& open);
  void tick(uint64_t now_ns) override;
  std::vector<ThrottleEvasion> take_evasions() override {
    return d_.throttle ? d_.throttle->take_evasions() : std::vector<ThrottleEvasion>{};
  }

  // The [[service]] a process belongs to: its main pid, or a descendant of it.
  std::optional<std::string> service_of(const Target& t) const;

 private:
  ActionOutcome restart_service(const std::string& name, const Target& t, bool from_checkpoint, bool dry_run);
  std::optional<std::string> refuse(const Target& t) const;
  // The safety check each member of a group or tree goes through.
  RefuseFn member_check() const;
  static std::vector<ProcKey> seeds_of(const Target& t);
  ActionOutcome throttle_group(const Target& t, const ThrottleLimits& limits);
  bool process_alive(const ProcKey& k) const;
  RealActuatorDeps d_;
  // Respawned processes whose identity is known only once they started.
  std::map<ProcKey, std::string> respawned_;
};

}  // namespace fp
