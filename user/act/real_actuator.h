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
#include <utility>

#include "act/action_worker.h"
#include "act/actuator.h"
#include "act/process.h"
#include "act/respawn.h"
#include "act/safety.h"
#include "act/stop_record.h"
#include "act/supervisor.h"
#include "act/systemd.h"
#include "act/throttle.h"
#include "act/unit_throttle.h"

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
  // The daemon runs as a systemd unit: respawns start as transient units of
  // their own (SystemdControl::start_transient), outside the daemon's sandbox.
  bool under_systemd = false;
  // Where systemctl and systemd-run calls run, off the sampling loop
  // (act/action_worker.h); nullptr: on the loop, waited for.
  ActionWorker* worker = nullptr;
  // A process of a systemd unit (Target::unit) is throttled through systemd
  // (act/unit_throttle.h) when systemd runs; nullptr: by `throttle` as any other.
  UnitThrottle* unit_throttle = nullptr;
  // Where kill_tree writes down what it stops before it kills (state_dir); may be null.
  StopRecord* stops = nullptr;
};

class RealActuator : public Actuator {
 public:
  explicit RealActuator(RealActuatorDeps deps) : d_(std::move(deps)) {}
  // Closes the pidfds of respawned children (they keep running: a respawn
  // outlives the daemon, as it would have without it).
  ~RealActuator() override;
  RealActuator(const RealActuator&) = delete;
  RealActuator& operator=(const RealActuator&) = delete;
  // Respawns waiting for their old process to exit, and children not reaped yet.
  size_t pending_respawns() const { return pending_.size(); }
  size_t children() const { return children_.size(); }

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
  std::vector<ThrottleEvasion> take_evasions() override;

  // The [[service]] a process belongs to: its main pid, or a descendant of it.
  std::optional<std::string> service_of(const Target& t) const;

 private:
  // A systemd call on `unit`: queued on the worker (the outcome says so; a
  // failure is logged when it comes back) or, without one, run here.
  ActionOutcome systemd_call(const std::string& unit, const std::string& what,
                             std::function<Result<std::string>()> call);
  ActionOutcome restart_service(const std::string& name, const Target& t, bool from_checkpoint, bool dry_run);
  std::optional<std::string> refuse(const Target& t) const;
  // The safety check each member of a group or tree goes through.
  RefuseFn member_check() const;
  static std::vector<ProcKey> seeds_of(const Target& t);
  ActionOutcome throttle_group(const Target& t, const ThrottleLimits& limits);
  // Whether t's throttle goes through systemd (its unit), and doing so.
  bool by_unit(const Target& t) const;
  ActionOutcome throttle_unit(const Target& t, const ThrottleLimits& limits, bool dry_run);
  ActionOutcome unthrottle_unit(const Target& t, bool dry_run);
  bool process_alive(const ProcKey& k) const;
  RealActuatorDeps d_;
  // A respawn waits for its old process off the loop: SIGTERM at once, then
  // tick() spawns once it exited, or sends SIGKILL after the grace.
  struct PendingRespawn {
    ProcessHandle old;
    SpawnSpec spec;
    uint64_t kill_at_ns = 0;     // 0: set at the first tick
    uint64_t give_up_ns = 0;     // after SIGKILL: how long it may take to die
  };
  Result<ProcKey> spawn_replacement(const ProcKey& old, const SpawnSpec& spec, std::string* detail);
  void advance_respawns(uint64_t now_ns);
  void reap_children();

  std::map<ProcKey, PendingRespawn> pending_;
  // Respawned processes by the process they replace, until the handler asks (replacement_of).
  std::map<ProcKey, ProcKey> replacements_;
  // Our children (respawns), reaped as they exit so none stays a zombie.
  std::map<pid_t, int> children_;  // pid -> pidfd
  uint64_t transient_seq_ = 0;
  // Unit throttles whose systemctl call failed on the worker: reported as
  // evasions (the handler's recovery check fails and the ladder goes on).
  std::vector<ThrottleEvasion> unit_failures_;
};

}  // namespace fp
