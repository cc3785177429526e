// Run-queue blame (bpf/runq_blame.bpf.h): a victim's waits on a CPU are
// charged to who ran there while it waited, with that runner's policy.
// Real-time spinners are bounded in time (a deadline in the loop, alarm() as
// a backstop, SIGKILL from the Child on every path) and RT throttling must be
// on (sched_rt_runtime_us < period), so CPU 1 always keeps 5 % for others.
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <vector>

#include "detect/locate_runq.h"
#include "probe/loader/runq_blame.h"
#include "probe_fixture.h"

namespace fp::test {
namespace {

using namespace std::chrono_literals;

constexpr int kCpu = 1;

long read_long(const char* path) {
  long v = 0;
  std::ifstream(path) >> v;
  return v;
}

// RT throttling leaves the other classes 5 % of every CPU: without it a
// runaway spinner would own CPU 1 for good. Refuse to run rather than risk it.
void require_rt_throttling() {
  long runtime = read_long("/proc/sys/kernel/sched_rt_runtime_us");
  long period = read_long("/proc/sys/kernel/sched_rt_period_us");
  ASSERT_TRUE(runtime >= 0 && runtime < period)
      << "RT throttling is off (sched_rt_runtime_us " << runtime << " of " << period
      << "): the real-time spinner of this test could starve the machine";
  ASSERT_GT(sysconf(_SC_NPROCESSORS_ONLN), kCpu) << "needs CPU " << kCpu;
}

// A CFS process pinned to `cpu` that never sleeps: it only ever runs or waits.
std::function<int()> busy_on(int cpu) {
  return [cpu] {
    pin_to_cpu(cpu);
    alarm(30);
    for (;;) asm volatile("" ::: "memory");
    return 0;
  };
}

// Whether `pid` runs only on `cpu` now (it pins itself once released).
bool pinned_to(pid_t pid, int cpu) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_last_of(" \t") + 1) == std::to_string(cpu);
  return false;
}

// The charges between two reads of the probe's tables.
class Charges {
 public:
  Charges() : reader_(probe().runq_blame_fd()) { EXPECT_TRUE(window_.update(reader_, 1, UINT64_MAX / 2)); }
  std::vector<RunqBlameEntry> since() {
    EXPECT_TRUE(window_.update(reader_, 2, UINT64_MAX / 2));
    return window_.delta();
  }
  // (cpu, tgid)'s entry in the latest delta.
  static std::optional<RunqBlameEntry> find(const std::vector<RunqBlameEntry>& d, uint32_t cpu, uint32_t tgid) {
    for (const auto& e : d)
      if (e.cpu == cpu && e.tgid == tgid) return e;
    return std::nullopt;
  }

 private:
  RunqBlameReader reader_;
  RunqBlameWindow window_;
};

std::string describe(const VictimBlame& v) {
  std::string s = "victim waited " + std::to_string(v.waited_ns / 1'000'000) + " ms in " + std::to_string(v.waits) +
                  " waits; runners:";
  for (size_t i = 0; i < v.runners.size() && i < 5; i++)
    s += " " + std::to_string(v.runners[i].tgid) + "=" + std::to_string(v.runners[i].share);
  return s;
}

TEST(RunqBlame, FifoSpinnerGetsMostOfTheWaitOfACfsProcessOnItsCpu) {
  ASSERT_GE(probe().runq_blame_fd(), 0) << "run-queue blame is off: " << probe().runq_blame_reason();
  require_rt_throttling();
  Child victim(busy_on(kCpu));
  victim.release();
  // The victim is on CPU 1 before the spinner comes.
  ASSERT_TRUE(wait_until([&] { return pinned_to(victim.pid(), kCpu); }, 5s));
  Charges charges;
  Child spinner([] {
    pin_to_cpu(kCpu);
    alarm(10);
    sched_param sp{};
    sp.sched_priority = 10;
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) return 3;
    spin_for(2500ms);  // wall time: bounded however it is throttled
    return 0;
  });
  spinner.release();
  int status = spinner.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "spinner status " << status;
  // The victim's last wait is charged when it runs again, right after the spinner exits.
  const uint32_t vpid = uint32_t(victim.pid()), spid = uint32_t(spinner.pid());
  std::vector<RunqBlameEntry> d;
  ASSERT_TRUE(wait_until(
      [&] {
        d = charges.since();
        auto e = Charges::find(d, kCpu, vpid);
        return e && e->waited_ns >= 1'000'000'000ull;
      },
      10s, 50ms))
      << describe(blame_of(d, vpid));
  victim.kill(SIGKILL);

  VictimBlame vb = blame_of(d, vpid);
  std::printf("spinner %u, %s\n", spid, describe(vb).c_str());
  ASSERT_FALSE(vb.runners.empty());
  EXPECT_EQ(vb.cpus.front(), uint32_t(kCpu));
  EXPECT_EQ(vb.runners.front().tgid, spid) << describe(vb);
  EXPECT_GE(vb.runners.front().share, 0.8) << describe(vb);
  auto s = Charges::find(d, kCpu, spid);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->policy, uint32_t(SCHED_FIFO));
  EXPECT_EQ(s->rt_priority, 10u);
  EXPECT_EQ(s->tid, spid);
  // None of the victim's waits were on the other CPU (it may have held that
  // CPU against a waiter there before it pinned itself).
  auto other = Charges::find(d, 1 - kCpu, vpid);
  EXPECT_TRUE(!other || other->waited_ns == 0) << other->waited_ns << " ns waited on CPU " << 1 - kCpu;
}

// A SCHED_DEADLINE task cannot be pinned (its affinity must span its root
// domain): a CFS victim on each CPU; whichever CPU the spinner runs on, that
// CPU's victim blames it, and each victim only its own CPU's runners.
TEST(RunqBlame, DeadlineSpinnerIsBlamedByTheVictimOfWhicheverCpuItHeld) {
  ASSERT_GE(probe().runq_blame_fd(), 0) << "run-queue blame is off: " << probe().runq_blame_reason();
  require_rt_throttling();
  Child v0(busy_on(0)), v1(busy_on(1));
  v0.release();
  v1.release();
  ASSERT_TRUE(wait_until([&] { return pinned_to(v0.pid(), 0) && pinned_to(v1.pid(), 1); }, 5s));
  Charges charges;
  Child spinner([] {
    alarm(10);
    struct {
      uint32_t size, policy;
      uint64_t flags;
      int32_t nice;
      uint32_t priority;
      uint64_t runtime, deadline, period;
    } attr{48, SCHED_DEADLINE, 0, 0, 0, 80'000'000, 100'000'000, 100'000'000};
    if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0) return 3;
    spin_for(2500ms);
    return 0;
  });
  spinner.release();
  int status = spinner.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "spinner status " << status << " (3: sched_setattr)";
  const uint32_t spid = uint32_t(spinner.pid());
  std::vector<RunqBlameEntry> d;
  uint64_t waited = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        d = charges.since();
        waited = blame_of(d, uint32_t(v0.pid())).waited_ns + blame_of(d, uint32_t(v1.pid())).waited_ns;
        return waited >= 1'000'000'000ull;
      },
      10s, 50ms))
      << "victims waited " << waited / 1'000'000 << " ms";
  v0.kill(SIGKILL);
  v1.kill(SIGKILL);
  int blamed = 0;
  for (const Child* v : {&v0, &v1}) {
    VictimBlame vb = blame_of(d, uint32_t(v->pid()));
    for (uint32_t cpu : vb.cpus) EXPECT_EQ(cpu, uint32_t(v == &v0 ? 0 : 1)) << "a wait on another CPU";
    std::printf("spinner %u, %s\n", spid, describe(vb).c_str());
    if (vb.waited_ns < 200'000'000ull) continue;  // the spinner hardly ran on this one's CPU
    // It shares the victim's CPU with whatever else runs there (global EDF
    // moves it between CPUs; on a loaded host builds run there too): the
    // largest share by far, not all of it.
    ASSERT_FALSE(vb.runners.empty());
    EXPECT_EQ(vb.runners[0].tgid, spid) << describe(vb);
    EXPECT_GE(vb.runners[0].share, 0.25) << describe(vb);
    if (vb.runners.size() > 1) {
      EXPECT_GE(vb.runners[0].share, 1.5 * vb.runners[1].share) << describe(vb);
    }
    blamed++;
  }
  EXPECT_GE(blamed, 1);
  std::optional<RunqBlameEntry> s;
  for (uint32_t cpu : {0u, 1u})
    if (auto e = Charges::find(d, cpu, spid); e && (!s || e->caused_ns > s->caused_ns)) s = e;
  ASSERT_TRUE(s);
  EXPECT_EQ(s->policy, uint32_t(SCHED_DEADLINE));
}

}  // namespace
}  // namespace fp::test
