// [[service]]s when faultprobed runs under systemd: each starts as a
// transient service unit of its own (systemd-run, as respawns do), so
// systemd forks it and nothing of faultprobed's sandbox reaches it
// (ProtectSystem=, CapabilityBoundingSet=, its mount namespace, its cgroup).
// The supervisor still owns it: the unit's MainPID, pinned with a pidfd
// checked to be in the unit's cgroup, is what it signals and watches exit.
// A CRIU restore runs as such a unit too (criu restore -d under
// Type=forking), and how a main process ended is systemd's record of the
// unit (ExecMainCode/ExecMainStatus), never a guess.
//
// Every call here runs systemd-run or systemctl (seconds): slow(), so the
// supervisor calls them from its action worker.
#pragma once

#include <cstdint>
#include <string>

#include "act/spawner.h"
#include "act/systemd.h"

namespace fp {

class SystemdSpawner : public RealSpawner {
 public:
  SystemdSpawner(SystemdControl& systemd, CommandRunner& runner, std::string proc_root = "/proc",
                 std::chrono::milliseconds timeout = std::chrono::seconds(10),
                 std::chrono::milliseconds settle_poll = std::chrono::milliseconds(100))
      : systemd_(systemd),
        runner_(runner),
        proc_root_(std::move(proc_root)),
        timeout_(timeout),
        settle_poll_(settle_poll) {}

  bool slow() const override { return true; }

  // systemd-run --unit=faultprobe-svc-NAME-N.service (NAME from the spec's
  // FAULTPROBE_SERVICE) with stdout and stderr appended to spec.log_path by
  // PID 1 (a path in the daemon's own log_dir), then `systemctl show -p
  // MainPID --value` for its pid. A unit whose main process cannot be pinned
  // is stopped again: nothing runs unsupervised. Not --collect (unlike a
  // respawn's unit): a unit that failed stays loaded until exit_status()
  // read how, then reset-failed unloads it.
  Result<Spawned> spawn(const SpawnSpec& spec) override;
  // `systemd-run --unit=faultprobe-svc-NAME-N.service --service-type=forking
  // -p PIDFile=DIR/restore.pid -- criu restore -d ... --manage-cgroups=ignore`:
  // systemd forks criu (as root, outside our sandbox), criu restores the tree
  // and exits (-d), and systemd takes the pid file's process as the unit's
  // MainPID (Type=forking); --manage-cgroups=ignore keeps the restored tree
  // in criu's cgroup, the unit's, rather than moving it back into the dumped
  // unit's. systemd-run returns once that start job is done. Then pinned as
  // spawn() does, and `check`ed; otherwise the unit is stopped.
  Result<Spawned> restore(CriuBackend& criu, const std::string& image_dir, const std::string& service,
                          const RestoreCheck& check) override;
  // `systemctl show -p LoadState,ActiveState,ExecMainCode,ExecMainStatus`:
  // a unit not found was collected, which the default CollectMode=inactive
  // does only to a unit that did not fail: a clean end (exit 0, or a signal
  // systemd counts as clean: SIGTERM, SIGINT, SIGHUP, SIGPIPE). An inactive
  // or failed unit: its main process's code and status; a failed one is then
  // reset-failed, so nothing is left behind. While systemd has not taken
  // the exit in yet (active, deactivating) it asks again every settle_poll,
  // up to the timeout: an Error then, never a guess.
  Result<int> exit_status(const std::string& unit) override;
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
  // The systemd-run argv of a restore of `image_dir` as `unit` (tests).
  static std::vector<std::string> restore_argv_for(const std::string& unit, const std::string& image_dir);

 private:
  Result<pid_t> main_pid(const std::string& unit);
  // MainPID of a unit systemd-run just started, pinned and checked to be in
  // it (and by `check`, when given); the unit is stopped when it is not.
  Result<Spawned> pin(const std::string& unit, const std::string& service, const RestoreCheck& check);

  SystemdControl& systemd_;
  CommandRunner& runner_;
  std::string proc_root_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds settle_poll_;
  uint64_t seq_ = 0;  // the worker's only (slow())
};

}  // namespace fp
