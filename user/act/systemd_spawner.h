// [[service]]s when faultprobed runs under systemd: each starts as a
// transient service unit of its own (systemd-run, as respawns do), so
// systemd forks it and nothing of faultprobed's sandbox reaches it
// (ProtectSystem=, CapabilityBoundingSet=, its mount namespace, its cgroup).
// The supervisor still owns it: the unit's MainPID, pinned with a pidfd
// checked to be in the unit's cgroup, is what it signals and watches exit.
#pragma once

#include <cstdint>
#include <string>

#include "act/spawner.h"
#include "act/systemd.h"

namespace fp {

class SystemdSpawner : public RealSpawner {
 public:
  SystemdSpawner(SystemdControl& systemd, CommandRunner& runner, std::string proc_root = "/proc",
                 std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : systemd_(systemd), runner_(runner), proc_root_(std::move(proc_root)), timeout_(timeout) {}

  // systemd-run --unit=faultprobe-svc-NAME-N.service (NAME from the spec's
  // FAULTPROBE_SERVICE) with stdout and stderr appended to spec.log_path by
  // PID 1 (a path in the daemon's own log_dir), then `systemctl show -p
  // MainPID --value` for its pid. A unit whose main process cannot be pinned
  // is stopped again: nothing runs unsupervised.
  Result<Spawned> spawn(const SpawnSpec& spec) override;
  // The main process only, through its pidfd: it is systemd's child, so its
  // pid (and process group) may be reused once it is gone; the rest of the
  // unit goes when the main process does (KillMode=control-group).
  Result<void> signal(pid_t pid, int pidfd, int sig) override;
  // adopt, reap, release: as RealSpawner (reap: the pidfd turns readable; the
  // status is systemd's, kUnknownWaitStatus here).

  // "faultprobe-svc-web-3.service": characters a unit name cannot hold become '_'.
  static std::string unit_for(const std::string& service, uint64_t seq);
  // The systemd-run argv for `spec` as `unit` (tests).
  static Result<std::vector<std::string>> argv_for(const std::string& unit, const SpawnSpec& spec);

 private:
  Result<pid_t> main_pid(const std::string& unit);

  SystemdControl& systemd_;
  CommandRunner& runner_;
  std::string proc_root_;
  std::chrono::milliseconds timeout_;
  uint64_t seq_ = 0;
};

}  // namespace fp
