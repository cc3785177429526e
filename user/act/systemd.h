// Restarting a systemd unit's process through systemd (systemctl), so the
// service manager stays in charge of it, and the command runner behind it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

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

 private:
  Result<std::string> systemctl(const std::string& unit, std::vector<std::string> argv, const std::string& done);

  CommandRunner& runner_;
  std::string run_dir_;
  std::chrono::milliseconds timeout_;
};

}  // namespace fp
