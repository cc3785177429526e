// The supervisor's process side effects behind an interface: start, signal,
// reap, adopt. The daemon uses RealSpawner (fork/exec, pidfds); unit tests
// drive the supervisor with a fake.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "act/checkpoint.h"
#include "act/spawn.h"
#include "util/result.h"

namespace fp {

// A wait status for a process that ended but is not our child (a CRIU-restored
// process is reparented away), so its real status cannot be read. Neither
// WIFEXITED nor WIFSIGNALED holds for it.
constexpr int kUnknownWaitStatus = -1;

class Spawner {
 public:
  // Checks the pid a CRIU restore made before it is handed over.
  using RestoreCheck = std::function<Result<void>(pid_t)>;

  virtual ~Spawner() = default;
  // Whether spawn(), restore() and exit_status() wait on other programs
  // (systemd-run, systemctl): the supervisor then calls them from its action
  // worker, never from the sampling loop. restore() always may (criu).
  virtual bool slow() const { return false; }
  virtual Result<Spawned> spawn(const SpawnSpec& spec) = 0;
  // A process started by someone else on our behalf (criu restore): a pidfd
  // for it, so signals and exit detection work as for spawned ones.
  virtual Result<Spawned> adopt(pid_t pid) = 0;
  // The process and, while it is unreaped, its process group (the service's
  // own session, so children it forked go too).
  virtual Result<void> signal(pid_t pid, int pidfd, int sig) = 0;
  // The wait status if it has exited (and reaps it), nullopt while it runs.
  // Never blocks.
  virtual std::optional<int> reap(pid_t pid, int pidfd) = 0;
  // Done with a pidfd.
  virtual void release(int pidfd) = 0;
  // `criu restore` of `image_dir` for `service`, started the way this
  // spawner starts services; the pid it made passes `check`, then is pinned.
  // Blocking (criu may run a minute). Here: criu as our child (CriuBackend).
  virtual Result<Spawned> restore(CriuBackend& criu, const std::string& image_dir, const std::string& service,
                                  const RestoreCheck& check);
  // How the process that ran as transient `unit` (Spawned::unit) ended, once
  // reap() found it gone with kUnknownWaitStatus. Blocking when slow().
  virtual Result<int> exit_status(const std::string& unit) {
    (void)unit;
    return kUnknownWaitStatus;
  }
};

class RealSpawner : public Spawner {
 public:
  Result<Spawned> spawn(const SpawnSpec& spec) override;
  Result<Spawned> adopt(pid_t pid) override;
  Result<void> signal(pid_t pid, int pidfd, int sig) override;
  std::optional<int> reap(pid_t pid, int pidfd) override;
  void release(int pidfd) override;
};

// glibc 2.36's <sys/pidfd.h> declares these without extern "C", so they do
// not link from C++: the raw system calls.
int sys_pidfd_open(pid_t pid, unsigned flags);
int sys_pidfd_send_signal(int pidfd, int sig);

// "exited with code 1", "killed by SIGSEGV (core dumped)", for logs and status.
std::string describe_wait_status(int status);

}  // namespace fp
