// Issue 15 item 8: a process that gets itself SIGCONT during the SIGSTOP
// phase of its duty cycle (a helper it forked, a shell loop) is seen, stopped
// again and reported, and the handler escalates to the next rung at once.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <map>
#include <thread>

#include "../time_scale.h"
#include "act/handler.h"
#include "act/process.h"
#include "act/signal_throttle.h"
#include "act/spawn.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kMs = 1'000'000;

struct Recorder : Signaller {
  std::vector<int> sigs;
  Result<void> send(const ProcKey&, int sig) override {
    sigs.push_back(sig);
    return {};
  }
};

ThrottleLimits cpu(double share) {
  ThrottleLimits l;
  l.cpu_share = share;
  return l;
}

// Period 1 s, 20 %: it runs [k, k+200ms), is stopped [k+200ms, k+1s),
// looked at at k+300ms and right before the SIGCONT at k+1s.
TEST(SignalDutyCycleEvasion, RunningInAStopPhaseIsAnEvasion) {
  FakeClock clock;
  Recorder sig;
  SignalDutyCycle::RunState st{'T', 0};
  SignalDutyCycle b(sig, clock, 1000 * kMs, "",
                    [&](const ProcKey&) -> std::optional<SignalDutyCycle::RunState> { return st; });
  const ProcKey key{321, 654};
  ASSERT_TRUE(b.throttle(key, cpu(0.2)).ok());
  auto run_to = [&](uint64_t t) {
    while (b.next_deadline_ns() <= t) {
      clock.set(b.next_deadline_ns());
      b.tick(clock.now_ns());
    }
    clock.set(t);
  };
  const uint64_t t0 = clock.now_ns();
  run_to(t0 + 1050 * kMs);  // stopped, and still stopped at the end of the phase
  EXPECT_EQ(sig.sigs, (std::vector<int>{SIGSTOP, SIGCONT}));
  EXPECT_TRUE(b.take_evasions().empty());
  // In an uninterruptible wait the stop is pending: not an evasion.
  st = {'D', 0};
  run_to(t0 + 2050 * kMs);
  EXPECT_TRUE(b.take_evasions().empty());
  // Stopped at the first look, running at the last: someone sent SIGCONT.
  st = {'T', 0};
  run_to(t0 + 2350 * kMs);
  st = {'S', 0};
  run_to(t0 + 3050 * kMs);
  auto ev = b.take_evasions();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].key, key);
  EXPECT_NE(ev[0].detail.find("was running (state S)"), std::string::npos) << ev[0].detail;
  EXPECT_TRUE(b.take_evasions().empty());
  // Never seen stopped, but it used CPU time in its stop phase.
  st = {'R', 100};
  run_to(t0 + 3350 * kMs);
  st = {'R', 105};
  run_to(t0 + 4050 * kMs);
  ev = b.take_evasions();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_NE(ev[0].detail.find("ms of CPU"), std::string::npos) << ev[0].detail;
  // Slow to stop on a busy host (runnable at the first look, a tick of CPU
  // while it acts on the SIGSTOP, stopped at the last): not an evasion.
  st = {'R', 105};
  run_to(t0 + 4350 * kMs);
  st = {'T', 106};
  run_to(t0 + 5050 * kMs);
  EXPECT_TRUE(b.take_evasions().empty());
  EXPECT_EQ(b.evasions(), 2u);
  // The duty cycle went on throughout.
  EXPECT_EQ(std::count(sig.sigs.begin(), sig.sigs.end(), SIGSTOP), 5);
  ASSERT_TRUE(b.release(key).ok());
}

// The real thing: a spinning shell and a second one sending it SIGCONT in a
// loop, against the real signaller and /proc.
pid_t spawn_sh(const std::string& script) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

struct RealSignaller : Signaller {
  PidfdSignaller p;
  Result<void> send(const ProcKey& k, int sig) override { return p.send(k, sig); }
};

bool evaded_within(SignalDutyCycle& b, MonotonicClock& clock, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + fp::test::scaled(limit);
  while (std::chrono::steady_clock::now() < end) {
    uint64_t next = b.next_deadline_ns(), now = clock.now_ns();
    if (next > now) std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<uint64_t>(next - now, 20 * kMs)));
    b.tick(clock.now_ns());
    if (!b.take_evasions().empty()) return true;
  }
  return false;
}

TEST(SignalDutyCycleEvasion, RealProcessContinuedByAHelperIsCaught) {
  pid_t hog = spawn_sh("while :; do :; done");
  ASSERT_GT(hog, 0);
  auto start = process_start_ns(hog);
  ASSERT_TRUE(start.ok());
  const ProcKey key{uint32_t(hog), *start};
  MonotonicClock clock;
  RealSignaller sig;
  SignalDutyCycle b(sig, clock, 400 * kMs);
  ASSERT_TRUE(b.throttle(key, cpu(0.25)).ok());
  // Alone, it stays stopped in its stop phases: several periods, no evasion.
  EXPECT_FALSE(evaded_within(b, clock, 1500ms));
  pid_t helper = spawn_sh("while kill -CONT " + std::to_string(hog) + "; do sleep 0.01; done");
  ASSERT_GT(helper, 0);
  EXPECT_TRUE(evaded_within(b, clock, 5000ms));
  kill(helper, SIGKILL);
  waitpid(helper, nullptr, 0);
  ASSERT_TRUE(b.release(key).ok());
  kill(hog, SIGKILL);
  waitpid(hog, nullptr, 0);
}

// ---- the handler: an evasion ends the recovery check at once ----

class OneProcessActuator : public Actuator {
 public:
  ActionOutcome throttle(const Target&, const ThrottleLimits&, bool) override { return log("throttle"); }
  ActionOutcome unthrottle(const Target&, bool) override { return log("unthrottle"); }
  ActionOutcome restart(const Target&, bool) override { return log("restart"); }
  ActionOutcome restore(const Target&, bool) override { return log("restore"); }
  ActionOutcome kill(const Target&, bool) override { return log("kill"); }
  bool alive(const ProcKey&) override { return true; }
  std::vector<ThrottleEvasion> take_evasions() override { return std::move(pending); }
  std::vector<std::string> done;
  std::vector<ThrottleEvasion> pending;

 private:
  ActionOutcome log(const char* what) {
    done.push_back(what);
    return ActionOutcome{ActionResult::Ok, what, {}};
  }
};

struct Resolve : TargetResolver {
  Target resolve(const FaultRecord& f) override {
    Target t;
    t.key = f.culprit;
    t.comm = "hog";
    return t;
  }
};

TEST(HandlerEvasion, EvadedThrottleEscalatesAtOnce) {
  Config cfg;
  PolicyConfig p;
  p.name = "hogs";
  p.match.comm = "hog";
  p.recovery_window = std::chrono::seconds(30);
  auto throttle = parse_ladder_step("throttle:cpu=20%"), kill = parse_ladder_step("kill");
  ASSERT_TRUE(throttle.ok() && kill.ok());
  p.on.push_back({FaultClass::CpuRunaway, {*throttle, *kill}});
  cfg.policies.push_back(p);
  OneProcessActuator act;
  Handler h(cfg, act, nullptr, false);
  Resolve resolve;
  FaultRecord f;
  f.cls = FaultClass::CpuRunaway;
  f.rule = "cpu_runaway";
  f.culprit = {4242, 7};
  f.comm = "hog";
  uint64_t now = 1'000'000'000;
  auto out = h.on_tick(now, {f}, {f}, resolve);
  ASSERT_EQ(act.done, (std::vector<std::string>{"throttle"}));
  // Seconds later, long before the 30 s window: the duty cycle was evaded.
  now += 2'000'000'000;
  act.pending.push_back({f.culprit, "it ran (state R) in a SIGSTOP phase"});
  out = h.on_tick(now, {}, {f}, resolve);
  ASSERT_EQ(out.recoveries.size(), 1u);
  EXPECT_FALSE(out.recoveries[0].recovered);
  EXPECT_EQ(out.recoveries[0].detail, "the throttle was evaded: it ran (state R) in a SIGSTOP phase; escalating to kill");
  EXPECT_EQ(act.done, (std::vector<std::string>{"throttle", "kill"}));
}

}  // namespace
}  // namespace fp
