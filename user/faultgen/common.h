// faultgen's process machinery: spawning fault processes, knowing when each is
// live, waiting for the end (--duration, SIGTERM/SIGINT/SIGHUP, or a fault
// process dying), and killing and reaping everything it made.
//
// Every child: PR_SET_PDEATHSIG(SIGKILL) (and exits if faultgen is already
// gone), its own process group (so stopping it also stops whatever it forked),
// default signal dispositions and mask, stdin/stdout on /dev/null, a short
// comm ("fg-cpu", ...). faultgen is a child subreaper, so orphaned grandchildren
// come back to it and are reaped too. All forks happen on faultgen's one
// thread (PDEATHSIG follows the forking thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace fg {

using fp::Result;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnavailable = 3;

constexpr uint64_t kMiB = 1ull << 20;

int64_t mono_ns();  // CLOCK_MONOTONIC
int64_t real_ns();  // CLOCK_REALTIME
void sleep_until(int64_t mono_deadline_ns);
void sleep_for(int64_t ns);

// One line on stdout, written at once (no stdio buffer to duplicate on fork).
void emit_line(const std::string& line);

// Child side: say so on stderr and _exit(1).
[[noreturn]] void child_fail(const std::string& what);
[[noreturn]] void child_fail_errno(const std::string& what);

// Busy loops, forever.
[[noreturn]] void spin_forever();
void spin_cpu_ns(int64_t ns);  // until this thread has used `ns` of CPU time

// Starts `threads - 1` spinning threads; the caller spins as the last one.
void start_spinners(int threads);

// Handed to a child's body.
class ChildContext {
 public:
  explicit ChildContext(int fd) : fd_(fd) {}
  // The fault is live: the parent's spawn() returns now. Call once.
  void ready();
  // Write end of the pipe to the parent, for data after ready() (crash times).
  int channel() const { return fd_; }

 private:
  int fd_;
};

struct Child {
  pid_t pid = -1;
  int channel = -1;  // read end; owned by the Supervisor
};

struct Event {
  enum class Kind { kStop, kDeadline, kExit };
  Kind kind = Kind::kStop;
  pid_t pid = -1;    // kExit: the child
  int status = 0;    // kExit: its wait status
  int64_t mono = 0;  // when faultgen saw it
  int64_t real = 0;
};

class Supervisor {
 public:
  // Blocks the stop signals and SIGCHLD (read through a signalfd) and makes
  // faultgen a child subreaper. `name` prefixes messages ("faultgen cpu").
  Supervisor(std::string name, std::optional<std::chrono::nanoseconds> duration);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  const std::string& name() const { return name_; }

  // Forks a child named `comm` that runs `body` (returning from it exits 0).
  // Returns once the child called ready(); an Error if it ended before that,
  // or (code EINTR) if a stop signal came first.
  Result<Child> spawn(const std::string& comm, const std::function<void(ChildContext&)>& body);

  // Prints the ground-truth line (timestamps taken now) and starts --duration.
  void announce(std::string_view fault, pid_t culprit, const std::vector<pid_t>& victims = {});
  bool has_deadline() const { return duration_.has_value(); }

  // The next thing that happened: a spawned child ended, a stop signal, or
  // --duration elapsed. Blocks until one of them.
  Event next_event();

  // The common tail of a fault: hold until a stop signal or --duration; if a
  // fault process ends first (killed from outside, OOM), print an "exited"
  // line and end the fault. Returns the exit code.
  int hold();

  // The channel of a reaped child is no longer needed.
  void release(pid_t pid);

  // SIGKILL every live child's process group, then reap until no child is
  // left (grandchildren included, as a subreaper). Idempotent.
  void stop_all();

  // Reports a failed spawn()/setup on stderr and returns the exit code
  // (0 when the "failure" was a stop request).
  int fail(const fp::Error& e) const;

 private:
  void drain_signals();
  void reap();

  std::string name_;
  std::optional<std::chrono::nanoseconds> duration_;
  std::optional<int64_t> deadline_;
  int sigfd_ = -1;
  bool stop_requested_ = false;
  std::set<pid_t> alive_;         // spawned, not reaped yet
  std::map<pid_t, int> channels_;  // spawned, not released: pid -> read end
  std::deque<Event> events_;
};

// Runs a helper program (argv[0] looked up in PATH), stdout/stderr to
// /dev/null unless `quiet` is false. Returns its wait status, or -1 if it
// could not be started.
int run_program(const std::vector<std::string>& argv, bool quiet = true);

// Whether `name` is an executable in PATH (or /sbin, /usr/sbin).
std::optional<std::string> find_program(const std::string& name);

}  // namespace fg
