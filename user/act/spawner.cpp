#include "act/spawner.h"

#include <poll.h>
#include <string.h>  // sigabbrev_np
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#ifndef P_PIDFD
#define P_PIDFD 3  // linux/wait.h; glibc 2.36 does not export it
#endif

namespace fp {

int sys_pidfd_open(pid_t pid, unsigned flags) { return static_cast<int>(syscall(SYS_pidfd_open, pid, flags)); }

int sys_pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

Result<Spawned> RealSpawner::spawn(const SpawnSpec& spec) { return spawn_process(spec); }

Result<Spawned> RealSpawner::adopt(pid_t pid) {
  int fd = sys_pidfd_open(pid, 0);
  if (fd < 0) return Error::from_errno(errno, "pidfd_open(" + std::to_string(pid) + ")");
  Spawned s;
  s.pid = pid;
  s.pidfd = fd;
  s.key.tgid = static_cast<uint32_t>(pid);
  return s;
}

Result<Spawned> Spawner::restore(CriuBackend& criu, const std::string& image_dir, const std::string& service,
                                 const RestoreCheck& check) {
  (void)service;
  auto pid = criu.restore(image_dir);
  if (!pid) return pid.error();
  if (auto v = check(*pid); !v) return v.error();
  auto a = adopt(*pid);
  if (!a) return Error{a.error().code, "restored pid " + std::to_string(*pid) + " but " + a.error().message};
  return a;
}

Result<void> RealSpawner::signal(pid_t pid, int pidfd, int sig) {
  if (pidfd >= 0) {
    if (sys_pidfd_send_signal(pidfd, sig) != 0 && errno != ESRCH)
      return Error::from_errno(errno, "pidfd_send_signal(" + std::to_string(pid) + ")");
  } else if (kill(pid, sig) != 0 && errno != ESRCH) {
    return Error::from_errno(errno, "kill(" + std::to_string(pid) + ")");
  }
  // The group: spawned services lead their own session, and while the leader
  // is unreaped (our caller reaps only after this) its pgid cannot be reused.
  // An adopted process may lead no group: ESRCH/EPERM are expected then.
  if (::kill(-pid, sig) != 0 && errno != ESRCH && errno != EPERM) {
    return Error::from_errno(errno, "kill(-" + std::to_string(pid) + ")");
  }
  return {};
}

std::optional<int> RealSpawner::reap(pid_t pid, int pidfd) {
  siginfo_t info{};
  int rc = pidfd >= 0 ? waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG)
                      : waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG);
  if (rc == 0) {
    if (info.si_pid == 0) return std::nullopt;  // still running
    switch (info.si_code) {
      case CLD_EXITED: return W_EXITCODE(info.si_status, 0);
      case CLD_KILLED: return W_EXITCODE(0, info.si_status);
      case CLD_DUMPED: return W_EXITCODE(0, info.si_status) | WCOREFLAG;
      default: return kUnknownWaitStatus;
    }
  }
  if (errno == ECHILD && pidfd >= 0) {
    // Not our child (adopted): a pidfd becomes readable when the process ends.
    pollfd p{pidfd, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) return kUnknownWaitStatus;
    return std::nullopt;
  }
  return std::nullopt;  // EINTR and the like: look again next tick
}

void RealSpawner::release(int pidfd) {
  if (pidfd >= 0) close(pidfd);
}

std::string describe_wait_status(int status) {
  auto sig_name = [](int sig) {
    const char* a = sigabbrev_np(sig);
    return a != nullptr ? "SIG" + std::string(a) : "signal " + std::to_string(sig);
  };
  if (status == kUnknownWaitStatus) return "ended (status unknown: not our child)";
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by " + sig_name(WTERMSIG(status)) + (WCOREDUMP(status) ? " (core dumped)" : "");
  return "wait status " + std::to_string(status);
}

}  // namespace fp
