// The SIGSTOP/SIGCONT duty cycle against a fake clock and a fake signaller,
// and the choice of throttle backend.
#include "act/throttle.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <limits>
#include <set>

#include "act/signal_throttle.h"
#include "act/throttle_state.h"
#include "fake_tree.h"

namespace fp {
namespace {

using test::FakeTree;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'000'000'000;  // FakeClock's start
constexpr ProcKey kKey{321, 654};

struct Sent {
  uint32_t tgid;
  int sig;
  uint64_t at_ns;
  bool operator==(const Sent&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Sent& s) {
  return os << "{" << s.tgid << ", " << (s.sig == SIGSTOP ? "STOP" : s.sig == SIGCONT ? "CONT" : "?") << ", +"
            << (s.at_ns - kT0) / kMs << "ms}";
}

class FakeSignaller : public Signaller {
 public:
  explicit FakeSignaller(const Clock& clock) : clock_(clock) {}
  Result<void> send(const ProcKey& key, int sig) override {
    if (gone.count(key.tgid)) return Error::from_errno(ESRCH, "pidfd_send_signal " + std::to_string(key.tgid));
    sent.push_back({key.tgid, sig, clock_.now_ns()});
    return {};
  }
  std::vector<Sent> sent;
  std::set<uint32_t> gone;

 private:
  const Clock& clock_;
};

ThrottleLimits cpu(double s) {
  ThrottleLimits l;
  l.cpu_share = s;
  return l;
}

// Runs the backend the way the daemon does: sleep until the next deadline,
// tick, until `until`.
void run_until(FakeClock& clock, ThrottleBackend& b, uint64_t until) {
  while (b.next_deadline_ns() <= until) {
    clock.set(b.next_deadline_ns());
    b.tick(clock.now_ns());
  }
  clock.set(until);
}

TEST(SignalDutyCycle, TwentyPercentOverThreePeriods) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  auto r = b.throttle(kKey, cpu(0.2));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "duty cycle: runs 200ms of every 1000ms (cpu 20%)");
  EXPECT_TRUE(sig.sent.empty());  // it runs first
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 200 * kMs);

  run_until(clock, b, kT0 + 3100 * kMs);
  std::vector<Sent> want = {{321, SIGSTOP, kT0 + 200 * kMs},  {321, SIGCONT, kT0 + 1000 * kMs},
                            {321, SIGSTOP, kT0 + 1200 * kMs}, {321, SIGCONT, kT0 + 2000 * kMs},
                            {321, SIGSTOP, kT0 + 2200 * kMs}, {321, SIGCONT, kT0 + 3000 * kMs}};
  EXPECT_EQ(sig.sent, want);
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 3200 * kMs);

  // Released in a stop phase (and in a run phase alike): SIGCONT.
  run_until(clock, b, kT0 + 3500 * kMs);
  sig.sent.clear();
  auto rel = b.release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_EQ(sig.sent, (std::vector<Sent>{{321, SIGCONT, kT0 + 3500 * kMs}}));
  EXPECT_FALSE(b.throttled(kKey));
  EXPECT_EQ(b.next_deadline_ns(), std::numeric_limits<uint64_t>::max());
}

TEST(SignalDutyCycle, ReleaseInARunPhaseStillSendsCont) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  ASSERT_TRUE(b.throttle(kKey, cpu(0.2)).ok());
  clock.advance(100 * kMs);
  ASSERT_TRUE(b.release(kKey).ok());
  EXPECT_EQ(sig.sent, (std::vector<Sent>{{321, SIGCONT, kT0 + 100 * kMs}}));
}

TEST(SignalDutyCycle, LateTickKeepsThePeriodGrid) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock, 1000 * kMs);
  ASSERT_TRUE(b.throttle(kKey, cpu(0.2)).ok());
  clock.set(kT0 + 1500 * kMs);  // the daemon was busy for 1.5 s
  b.tick(clock.now_ns());
  EXPECT_EQ(sig.sent, (std::vector<Sent>{{321, SIGSTOP, kT0 + 1500 * kMs}}));  // one signal, not a burst
  // The first look at the stopped process (is it still stopped?), 100 ms on.
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 1600 * kMs);
  b.tick(kT0 + 1600 * kMs);  // a look, no signal
  EXPECT_EQ(sig.sent.size(), 1u);
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 2000 * kMs);  // the grid holds
}

TEST(SignalDutyCycle, UpdatingTheShareTakesEffectAtOnce) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  ASSERT_TRUE(b.throttle(kKey, cpu(0.2)).ok());
  run_until(clock, b, kT0 + 300 * kMs);  // stopped since +200ms
  ASSERT_TRUE(b.throttle(kKey, cpu(0.5)).ok());  // +300ms is inside a 500ms run phase
  EXPECT_EQ(sig.sent, (std::vector<Sent>{{321, SIGSTOP, kT0 + 200 * kMs}, {321, SIGCONT, kT0 + 300 * kMs}}));
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 500 * kMs);
  EXPECT_EQ(b.throttled_keys(), std::vector<ProcKey>{kKey});
}

TEST(SignalDutyCycle, TwoProcessesKeepTheirOwnCycles) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  ASSERT_TRUE(b.throttle(kKey, cpu(0.2)).ok());
  clock.advance(100 * kMs);
  ASSERT_TRUE(b.throttle(ProcKey{7, 8}, cpu(0.5)).ok());
  run_until(clock, b, kT0 + 1000 * kMs);
  std::vector<Sent> want = {{321, SIGSTOP, kT0 + 200 * kMs}, {7, SIGSTOP, kT0 + 600 * kMs},
                            {321, SIGCONT, kT0 + 1000 * kMs}};
  EXPECT_EQ(sig.sent, want);
}

TEST(SignalDutyCycle, VanishedProcess) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  ASSERT_TRUE(b.throttle(kKey, cpu(0.2)).ok());
  sig.gone.insert(321);
  run_until(clock, b, kT0 + 5000 * kMs);  // would loop forever if the cycle kept a deadline
  EXPECT_TRUE(sig.sent.empty());
  EXPECT_EQ(b.next_deadline_ns(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(b.throttled(kKey));  // until released
  auto again = b.throttle(kKey, cpu(0.3));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ESRCH);
  auto rel = b.release(kKey);
  ASSERT_TRUE(rel.ok()) << rel.error().message;
  EXPECT_NE(rel->find("had exited"), std::string::npos) << *rel;
  EXPECT_FALSE(b.throttled(kKey));
  EXPECT_EQ(b.release(kKey).error().code, ENOENT);
}

TEST(SignalDutyCycle, OnlyCpuBelowOneCpu) {
  FakeClock clock;
  FakeSignaller sig(clock);
  SignalDutyCycle b(sig, clock);
  std::string why;
  ThrottleLimits mem;
  mem.memory_bytes = 1 << 20;
  EXPECT_FALSE(b.supports(mem, &why));
  EXPECT_NE(why.find("cannot limit memory"), std::string::npos) << why;
  ThrottleLimits io;
  io.io_bps = 1;
  EXPECT_FALSE(b.supports(io, &why));
  EXPECT_NE(why.find("cannot limit io"), std::string::npos) << why;
  ThrottleLimits pids = cpu(0.2);
  pids.pids = 5;
  EXPECT_FALSE(b.supports(pids, &why));
  EXPECT_NE(why.find("cannot limit pids"), std::string::npos) << why;
  EXPECT_FALSE(b.supports(cpu(1.5), &why));
  EXPECT_NE(why.find("150%"), std::string::npos) << why;
  EXPECT_FALSE(b.supports(cpu(0), &why));
  EXPECT_TRUE(b.supports(cpu(0.05), &why));
  auto r = b.throttle(kKey, mem);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EOPNOTSUPP);
  EXPECT_FALSE(b.throttled(kKey));
  EXPECT_STREQ(b.name(), "signal");
}

TEST(SignalDutyCycle, RestartedDaemonContinuesAndFreesTheGone) {
  FakeTree t;
  std::string state = t.path("throttles.json");
  FakeClock clock;
  FakeSignaller sig(clock);
  {
    SignalDutyCycle a(sig, clock, 1000 * kMs, state);
    ASSERT_TRUE(a.throttle(kKey, cpu(0.2)).ok());
    ASSERT_TRUE(a.throttle(ProcKey{7, 8}, cpu(0.3)).ok());
    run_until(clock, a, kT0 + 250 * kMs);  // both stopped; then the daemon dies
  }
  sig.gone.insert(7);
  sig.sent.clear();
  SignalDutyCycle b(sig, clock, 1000 * kMs, state);
  EXPECT_EQ(sig.sent, (std::vector<Sent>{{321, SIGCONT, kT0 + 250 * kMs}}));
  EXPECT_TRUE(b.throttled(kKey));
  EXPECT_FALSE(b.throttled(ProcKey{7, 8}));
  EXPECT_EQ(b.next_deadline_ns(), kT0 + 450 * kMs);  // a fresh cycle
  auto saved = load_throttle_state(state);
  ASSERT_TRUE(saved.ok());
  ASSERT_EQ(saved->entries.size(), 1u);
  EXPECT_EQ(saved->backend, "signal");
  EXPECT_EQ(saved->entries[0].limits, cpu(0.2));
}

// ---- cpu quota ----

TEST(CpuQuota, ShareOfOneCpuInMicroseconds) {
  EXPECT_EQ(cpu_quota_us(0.2), 20000u);
  EXPECT_EQ(cpu_quota_us(2.5), 250000u);
  EXPECT_EQ(cpu_quota_us(0.001), 1000u);  // the kernel's minimum
  EXPECT_EQ(cpu_quota_us(0), 1000u);
}

// ---- choice of backend ----

TEST(ChooseThrottleBackend, PrefersV2ThenV1ThenSignals) {
  FakeTree t;
  FakeClock clock;
  FakeSignaller sig(clock);
  std::string why;

  CgroupLayout v2{t.path("cg2"), {"cpuset", "cpu", "io", "memory", "pids"}, {{"cpu", t.path("cpu")}}};
  auto b = choose_throttle_backend(v2, sig, clock, &why, "", t.path("proc"));
  EXPECT_STREQ(b->name(), "cgroup2");
  EXPECT_EQ(why, "cgroup2 at " + t.path("cg2") + " has the cpu controller");

  // This machine: cgroup2 with no cpu, v1 cpu.
  CgroupLayout hybrid{t.path("unified"), {"hugetlb"}, {{"cpu", t.path("cpu")}, {"memory", t.path("memory")}}};
  b = choose_throttle_backend(hybrid, sig, clock, &why);
  EXPECT_STREQ(b->name(), "cgroup1");
  EXPECT_EQ(why, "cgroup2 at " + t.path("unified") + " has no cpu controller; cgroup v1 cpu is mounted at " +
                     t.path("cpu"));
  std::string no;
  EXPECT_TRUE(b->supports(cpu(0.2), &no));
  ThrottleLimits io;
  io.io_bps = 1;
  EXPECT_FALSE(b->supports(io, &no));

  CgroupLayout v1_only{"", {}, {{"cpu", t.path("cpu")}}};
  b = choose_throttle_backend(v1_only, sig, clock, &why);
  EXPECT_STREQ(b->name(), "cgroup1");
  EXPECT_EQ(why.rfind("no cgroup2 mounted; ", 0), 0u) << why;

  CgroupLayout none{t.path("unified"), {"memory"}, {{"memory", t.path("memory")}}};
  b = choose_throttle_backend(none, sig, clock, &why);
  EXPECT_STREQ(b->name(), "signal");
  EXPECT_NE(why.find("no cgroup cpu controller"), std::string::npos) << why;
}

}  // namespace
}  // namespace fp
