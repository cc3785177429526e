// Restarting a systemd unit's process through systemd (systemctl), so the
// service manager stays in charge of it, starting a respawn as a transient
// unit (systemd-run), and the command runner behind them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "act/spawn.h"
#include "util/result.h"

namespace fp {

// Runs a command to completion; tests use a fake.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // The exit status, or an error when it could not run, was killed by a
  // signal or timed out (then it is killed, with its process group). stdout
  // and stderr go to *output (when given), up to a cap.
  virtual Result<int> run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          std::string* output) = 0;
};

// posix_spawnp (safe in a multi-threaded daemon), stdin from /dev/null, its
// own process group, default signal dispositions and an empty signal mask.
// It reaps its own child by pid: a SIGCHLD handler elsewhere that reaps with
// waitpid(-1) would steal the status.
class RealCommandRunner : public CommandRunner {
 public:
  static constexpr size_t kOutputCap = 64 * 1024;
  Result<int> run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                  std::string* output) override;
  // A flag that ends a running command like a timeout once raised (checked
  // twice a second): the action worker's shutdown bound (act/action_worker.h).
  void set_cancel(const std::atomic<bool>* flag) { cancel_ = flag; }

 private:
  const std::atomic<bool>* cancel_ = nullptr;
};

// A unit name systemctl will take as one unit: [A-Za-z0-9:_.@\-]+ with a
// known suffix, at most 255 characters, no template without an instance.
bool valid_unit_name(const std::string& unit);

class SystemdControl {
 public:
  explicit SystemdControl(CommandRunner& runner, std::string run_dir = "/run/systemd/system",
                          std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : runner_(runner), run_dir_(std::move(run_dir)), timeout_(timeout) {}

  // systemd is PID 1 (sd_booted(3)'s test: the run dir exists).
  bool available() const;
  // `systemctl restart --no-block -- UNIT`: queued, not waited for (the
  // recovery stage checks the outcome).
  Result<std::string> restart(const std::string& unit);
  // The same through the user manager of uid: `systemctl --user -M UID@
  // restart --no-block -- UNIT` (systemd >= 248), which acts as that user, on
  // that user's unit, never on a system unit of the same name.
  Result<std::string> restart_user_unit(const std::string& unit, uint32_t uid);
  // `systemctl kill --signal=SIGNAME -- UNIT`: every process of the unit.
  Result<std::string> kill(const std::string& unit, int signal);
  // `systemctl [--user -M UID@] set-property --runtime -- UNIT ASSIGNMENT...`:
  // resource properties of a unit (lost at reboot), through the manager of
  // uid when `user` is set. systemd writes them into the unit's cgroup and
  // keeps them there across daemon-reload.
  Result<std::string> set_property(const std::string& unit, std::optional<uint32_t> user,
                                   const std::vector<std::string>& assignments);
  // `systemctl [--user -M UID@] show -p P1,P2 -- UNIT`: the NAME=VALUE lines,
  // in order (a list property may have several lines, or none when empty).
  using Properties = std::vector<std::pair<std::string, std::string>>;
  Result<Properties> show(const std::string& unit, std::optional<uint32_t> user, const std::vector<std::string>& names);

  // A respawn as a transient service of its own: `systemd-run --unit=UNIT
  // --service-type=exec --collect -p User=UID -p Group=GID -p
  // SupplementaryGroups=... -p OOMScoreAdjust=N --working-directory=CWD
  // --setenv=K=V... -- ARGV`. systemd forks it, so nothing of faultprobed's
  // own sandbox (mount namespace, capability bounding set, seccomp filter,
  // its cgroup) reaches it; a --scope would run it from our process and keep
  // all of that. Its output goes to the journal: the file the old process
  // wrote to is not reopened (a path the user chose; PID 1 would open it).
  // Refused (EINVAL): a bad unit name, an environment entry systemd-run
  // cannot pass (a NUL, or one argument above 128 KiB). Returns "UNIT".
  // `properties` ("StandardOutput=append:/var/log/...") are added as
  // --property= (the caller's own values, not a user's).
  Result<std::string> start_transient(const std::string& unit, const SpawnSpec& spec,
                                      const std::vector<std::string>& properties = {});
  // The argv start_transient runs (for tests and the dry-run detail).
  static Result<std::vector<std::string>> transient_argv(const std::string& unit, const SpawnSpec& spec,
                                                         const std::vector<std::string>& properties = {});

 private:
  Result<std::string> systemctl(const std::string& unit, std::vector<std::string> argv, const std::string& done,
                                std::string* output = nullptr);
  // "systemctl" or "systemctl --user -M UID@".
  static std::vector<std::string> manager(std::optional<uint32_t> user);
  Result<std::string> run_checked(const std::vector<std::string>& argv, const std::string& what,
                                  const std::string& done, std::string* output = nullptr);

  CommandRunner& runner_;
  std::string run_dir_;
  std::chrono::milliseconds timeout_;
};

}  // namespace fp
