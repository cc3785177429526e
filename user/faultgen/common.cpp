#include "faultgen/common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <thread>

#include "faultgen/logic.h"

namespace fg {

namespace {

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

timespec to_timespec(int64_t ns) {
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stdout closed: nobody is listening; keep going
    data += n;
    len -= static_cast<size_t>(n);
  }
}

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  return set;
}

// Everything a new child does before its body runs.
void child_setup(const std::string& comm, pid_t parent, int sigfd) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail_errno("prctl(PR_SET_PDEATHSIG)");
  if (getppid() != parent) _exit(1);  // faultgen died before the line above
  setpgid(0, 0);
  close(sigfd);
  // Default actions, whatever faultgen inherited (a shell's `&` ignores SIGINT):
  // a fault process must react to signals the way an ordinary program does.
  for (int sig = 1; sig < 32; ++sig) {  // the standard signals
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    close(null);
  }
  prctl(PR_SET_NAME, comm.c_str());
}

}  // namespace

int64_t mono_ns() { return now_ns(CLOCK_MONOTONIC); }
int64_t real_ns() { return now_ns(CLOCK_REALTIME); }

void sleep_until(int64_t mono_deadline_ns) {
  timespec ts = to_timespec(mono_deadline_ns);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

void sleep_for(int64_t ns) { sleep_until(mono_ns() + ns); }

void emit_line(const std::string& line) {
  std::string s = line + "\n";
  write_all(STDOUT_FILENO, s.data(), s.size());
}

void child_fail(const std::string& what) {
  char comm[17] = {};
  prctl(PR_GET_NAME, comm);
  std::string s = std::string(comm) + "[" + std::to_string(getpid()) + "]: " + what + "\n";
  write_all(STDERR_FILENO, s.data(), s.size());
  _exit(1);
}

void child_fail_errno(const std::string& what) { child_fail(what + ": " + std::strerror(errno)); }

void spin_forever() {
  volatile uint64_t n = 0;
  for (;;) n = n + 1;
}

void spin_cpu_ns(int64_t ns) {
  int64_t end = now_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
  volatile uint64_t n = 0;
  while (now_ns(CLOCK_THREAD_CPUTIME_ID) < end) {
    for (int i = 0; i < 1000; ++i) n = n + 1;
  }
}

void start_spinners(int threads) {
  for (int i = 1; i < threads; ++i) std::thread(spin_forever).detach();
}

void ChildContext::ready() {
  write_all(fd_, "r", 1);
}

// ---------------------------------------------------------------------------

Supervisor::Supervisor(std::string name, std::optional<std::chrono::nanoseconds> duration)
    : name_(std::move(name)), duration_(duration) {
  // An inherited SIG_IGN for SIGCHLD would make children vanish unwaited.
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill faultgen before it cleans up
  sigset_t set = handled_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);  // blocked signals are queued even if ignored
  sigfd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd_ < 0) {
    std::perror("faultgen: signalfd");
    std::exit(kExitFailed);  // nothing started yet
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

Supervisor::~Supervisor() {
  stop_all();
  if (sigfd_ >= 0) close(sigfd_);
}

Result<Child> Supervisor::spawn(const std::string& comm, const std::function<void(ChildContext&)>& body) {
  using fp::Error;
  if (stop_requested_) return Error{EINTR, "stopped"};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno(errno, "pipe");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return Error::from_errno(err, "fork");
  }
  if (pid == 0) {
    close(fds[0]);
    child_setup(comm, parent, sigfd_);
    ChildContext ctx(fds[1]);
    try {
      body(ctx);
    } catch (const std::exception& e) {
      child_fail(e.what());
    } catch (...) {
      child_fail("unexpected exception");
    }
    _exit(0);  // never return into faultgen's own code
  }
  setpgid(pid, pid);  // also done by the child; whichever runs first
  close(fds[1]);
  alive_.insert(pid);
  channels_[pid] = fds[0];

  // Wait for the ready byte, or EOF (the child ended first), or a stop signal.
  for (;;) {
    pollfd p[2] = {{fds[0], POLLIN, 0}, {sigfd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "poll");
    }
    if (p[1].revents != 0) {
      drain_signals();
      if (stop_requested_) return Error{EINTR, "stopped"};
    }
    if (p[0].revents == 0) continue;
    char byte = 0;
    ssize_t n = read(fds[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n == 1) return Child{pid, fds[0]};
    // EOF: the child is gone (or going). Find its status.
    int status = 0;
    reap();
    bool found = false;
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->kind == Event::Kind::kExit && it->pid == pid) {
        status = it->status;
        events_.erase(it);
        found = true;
        break;
      }
    }
    if (!found) {
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      alive_.erase(pid);
    }
    release(pid);
    return Error{0, comm + " " + describe_status(status) + " before it was ready"};
  }
}

void Supervisor::announce(std::string_view fault, pid_t culprit, const std::vector<pid_t>& victims) {
  int64_t mono = mono_ns();
  int64_t real = real_ns();
  emit_line(truth_line(fault, culprit, victims, mono, real));
  if (duration_) deadline_ = mono + duration_->count();
}

void Supervisor::drain_signals() {
  signalfd_siginfo si;
  for (;;) {
    ssize_t n = read(sigfd_, &si, sizeof(si));
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof(si))) break;
    if (si.ssi_signo == SIGCHLD) {
      reap();
    } else {
      stop_requested_ = true;
    }
  }
  reap();  // SIGCHLDs coalesce; a cheap extra look costs nothing
}

void Supervisor::reap() {
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0 || (pid < 0 && errno == EINTR)) {
    if (pid < 0) continue;
    if (alive_.erase(pid) == 0) continue;  // an orphaned grandchild, come back to us
    events_.push_back(Event{Event::Kind::kExit, pid, status, mono_ns(), real_ns()});
  }
}

Event Supervisor::next_event() {
  for (;;) {
    if (stop_requested_) return Event{Event::Kind::kStop, -1, 0, mono_ns(), real_ns()};
    if (!events_.empty()) {
      Event e = events_.front();
      events_.pop_front();
      return e;
    }
    int64_t now = mono_ns();
    if (deadline_ && now >= *deadline_) return Event{Event::Kind::kDeadline, -1, 0, now, real_ns()};
    timespec timeout{};
    timespec* tp = nullptr;
    if (deadline_) {
      timeout = to_timespec(*deadline_ - now);
      tp = &timeout;
    }
    pollfd p{sigfd_, POLLIN, 0};
    int r = ppoll(&p, 1, tp, nullptr);
    if (r > 0) drain_signals();
  }
}

int Supervisor::hold() {
  Event e = next_event();
  if (e.kind == Event::Kind::kExit) {
    emit_line(exited_line(e.pid, e.mono, e.real, e.status));
    std::fprintf(stderr, "%s: fault process %d %s; stopping\n", name_.c_str(), e.pid,
                 describe_status(e.status).c_str());
  }
  return kExitOk;
}

void Supervisor::release(pid_t pid) {
  auto it = channels_.find(pid);
  if (it == channels_.end()) return;
  close(it->second);
  channels_.erase(it);
}

void Supervisor::stop_all() {
  // Only groups whose leader is not yet reaped: their ids cannot have been reused.
  for (pid_t pid : alive_) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }
  // Everything left is dying: our children by SIGKILL, their descendants by the
  // group kill or PDEATHSIG. As a subreaper we reap them all.
  int status = 0;
  for (;;) {
    pid_t pid = waitpid(-1, &status, 0);
    if (pid > 0 || (pid < 0 && errno == EINTR)) continue;
    break;  // ECHILD: nothing left
  }
  alive_.clear();
  for (auto& [pid, fd] : channels_) close(fd);
  channels_.clear();
}

int Supervisor::fail(const fp::Error& e) const {
  if (e.code == EINTR && stop_requested_) return kExitOk;
  std::fprintf(stderr, "%s: %s\n", name_.c_str(), e.message.c_str());
  return kExitFailed;
}

// ---------------------------------------------------------------------------

std::optional<std::string> find_program(const std::string& name) {
  std::string path = getenv("PATH") != nullptr ? getenv("PATH") : "/usr/bin:/bin";
  path += ":/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

int run_program(const std::vector<std::string>& argv, bool quiet) {
  auto exe = find_program(argv.at(0));
  if (!exe) return -1;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
      if (quiet) {
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
      } else {
        dup2(STDERR_FILENO, STDOUT_FILENO);  // never onto faultgen's stdout
      }
    }
    execv(exe->c_str(), args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

}  // namespace fg
