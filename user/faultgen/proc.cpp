// crash / crash_loop, hang and fork_bomb: faults in the life of processes.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "faultgen/faults.h"
#include "faultgen/logic.h"

namespace fg {

// ---------------------------------------------------------------------------
// crash

namespace {

// Dies by `signo` the way real programs do.
[[noreturn]] void die_by(int signo) {
  signal(signo, SIG_DFL);  // a sanitizer build catches SEGV/FPE/BUS; the default action is the point
  switch (signo) {
    case SIGSEGV: {
      int* volatile null = nullptr;  // volatile: the compiler cannot see it is null
      *null = 42;
      break;
    }
    case SIGFPE: {
      // Both operands volatile: GCC turns 1 / x into a compare, which never traps.
      volatile int one = 1;
      volatile int zero = 0;
      volatile int quotient = one / zero;
      (void)quotient;
      break;
    }
    case SIGABRT:
      abort();
    default:
      raise(signo);
  }
  child_fail("still alive after trying to die by SIG" + signal_name(signo));
}

struct CrashTime {
  int64_t mono = 0;
  int64_t real = 0;
};

[[noreturn]] void crash_body(ChildContext& ctx, int signo, nanoseconds after) {
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  ctx.ready();
  sleep_until(mono_ns() + after.count());
  CrashTime t{mono_ns(), real_ns()};
  if (write(ctx.channel(), &t, sizeof(t)) != sizeof(t)) child_fail_errno("write to faultgen");
  die_by(signo);
}

}  // namespace

int run_crash(Supervisor& sup, const CrashOptions& o) {
  const int crashes = o.loop.value_or(1);
  auto start_one = [&](nanoseconds after) {
    return sup.spawn("fg-crash", [&](ChildContext& ctx) { crash_body(ctx, o.signo, after); });
  };
  auto child = start_one(o.after);
  if (!child) return sup.fail(child.error());
  sup.announce(o.loop ? "crash_loop" : "crash", child->pid);

  int crashed = 0;
  for (;;) {
    Event e = sup.next_event();
    if (e.kind != Event::Kind::kExit) return kExitOk;  // stop signal or --duration
    // The time the child took just before its fatal instruction; if it died
    // some other way (killed from outside), the time faultgen saw it.
    CrashTime t{e.mono, e.real};
    CrashTime sent;
    if (read(child->channel, &sent, sizeof(sent)) == sizeof(sent)) t = sent;
    emit_line(crash_line(e.pid, t.mono, t.real, e.status));
    sup.release(e.pid);
    if (++crashed == crashes) break;
    child = start_one(o.every);
    if (!child) return sup.fail(child.error());
  }
  // All crashes done: without --duration that is the end; with it, wait it out.
  if (sup.has_deadline()) {
    while (sup.next_event().kind == Event::Kind::kExit) {
    }
  }
  return kExitOk;
}

// ---------------------------------------------------------------------------
// hang

namespace {

// vfork() keeps the parent in uninterruptible (killable) sleep until the child
// exits: the child sleeps `dstate` first. Only syscalls run in the vfork
// child, which shares our memory and stack.
__attribute__((noinline)) void one_vfork_hang(const timespec* dstate, int ready_fd, pid_t self) {
  pid_t pid = vfork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(1);
    prctl(PR_SET_NAME, "fg-hang-sleep");
    if (ready_fd >= 0) (void)!write(ready_fd, "r", 1);  // the parent is in D from now on
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, dstate, nullptr) == EINTR) {
    }
    _exit(0);
  }
  if (pid < 0) child_fail_errno("vfork");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void hang_body(ChildContext& ctx, nanoseconds dstate) {
  const timespec ts{static_cast<time_t>(dstate.count() / 1'000'000'000),
                    static_cast<long>(dstate.count() % 1'000'000'000)};
  // The first vfork child tells faultgen when the D state starts; then repeat
  // until faultgen stops us.
  one_vfork_hang(&ts, ctx.channel(), getpid());
  for (;;) one_vfork_hang(&ts, -1, getpid());
}

}  // namespace

int run_hang(Supervisor& sup, const HangOptions& o) {
  auto child = sup.spawn("fg-hang", [&](ChildContext& ctx) { hang_body(ctx, o.dstate); });
  if (!child) return sup.fail(child.error());
  sup.announce("hang", child->pid);
  return sup.hold();
}

// ---------------------------------------------------------------------------
// fork bomb

namespace {

constexpr int kMaxAlive = 64;
constexpr int64_t kMaxLagNs = 1'000'000'000;

[[noreturn]] void forkbomb_body(ChildContext& ctx, double rate) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, nullptr);  // waited for with sigtimedwait
  const int64_t period = std::max<int64_t>(1, static_cast<int64_t>(1e9 / rate));
  int alive = 0;
  ctx.ready();
  int64_t next = mono_ns();
  for (;;) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) --alive;
    int64_t now = mono_ns();
    if (alive >= kMaxAlive || now < next) {
      // Until a child exits, or (below the bound) the next fork is due.
      timespec ts{0, 0};
      int64_t wait = alive >= kMaxAlive ? kMaxLagNs : next - now;
      ts.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(wait % 1'000'000'000);
      sigtimedwait(&chld, nullptr, &ts);
      continue;
    }
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      _exit(0);  // exits at once; getppid() needs no check for a process that is already leaving
    }
    if (pid > 0) ++alive;  // a failed fork (pids limit) just counts as a missed slot
    next += period;
    if (now - next > kMaxLagNs) next = now;  // far behind: do not burst to catch up
  }
}

}  // namespace

int run_forkbomb(Supervisor& sup, const ForkBombOptions& o) {
  auto child = sup.spawn("fg-forkbomb", [&](ChildContext& ctx) { forkbomb_body(ctx, o.rate); });
  if (!child) return sup.fail(child.error());
  sup.announce("fork_bomb", child->pid);
  return sup.hold();
}

}  // namespace fg
