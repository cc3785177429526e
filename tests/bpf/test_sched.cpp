// Scheduler family: on-CPU time, run-queue wait, D-state, forks.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <cmath>

#include "probe_fixture.h"
#include "../time_scale.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

namespace {

uint64_t rusage_cpu_ns(const rusage& ru) {
  auto tv = [](const timeval& t) { return uint64_t(t.tv_sec) * 1'000'000'000ull + uint64_t(t.tv_usec) * 1000; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

}  // namespace

TEST(Sched, SpinnerCpuTimeWithin15Percent) {
  probe();
  reset_events();
  Child c([] {
    spin_cpu_for(500ms);
    return 0;
  });
  c.release();
  int status = 0;
  rusage ru{};
  ASSERT_EQ(wait4(c.pid(), &status, 0, &ru), c.pid());
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex) << "no exit event for the spinner";
  double cpu = double(ex->final.cpu_ns);
  // the child spun on an otherwise quiet machine unless rusage says otherwise
  EXPECT_NEAR(cpu, 500e6, 0.15 * 500e6) << "probe cpu_ns " << cpu << " nvcsw " << ex->final.nvcsw
                                        << " nivcsw " << ex->final.nivcsw << " runq_waits "
                                        << ex->final.runq_waits << " runq_wait_ns " << ex->final.runq_wait_ns
                                        << " drops(threads) " << probe().drops()[FP_DROP_THREADS_FULL];
  // and against the kernel's own accounting of the same child: the probe
  // reads the same counter, so within the 0.1 %
  double truth = double(rusage_cpu_ns(ru));
  EXPECT_NEAR(cpu, truth, 0.001 * truth) << "rusage says " << truth;
}

TEST(Sched, TwoSpinnersOnOneCpuWaitForEachOther) {
  probe();
  reset_events();
  auto body = [] {
    pin_to_cpu(0);
    spin_for(800ms);
    return 0;
  };
  Child a(body), b(body);
  a.release();
  b.release();
  a.wait();
  b.wait();
  auto ea = wait_exit(uint32_t(a.pid()), 3s);
  auto eb = wait_exit(uint32_t(b.pid()), 3s);
  ASSERT_TRUE(ea && eb);
  const fp_proc& pa = ea->final;
  const fp_proc& pb = eb->final;
  // Sharing one CPU, each spent a large part of its life waiting for the other.
  EXPECT_GT(pa.runq_wait_ns, 0u);
  EXPECT_GT(pb.runq_wait_ns, 0u);
  EXPECT_GT(pa.nivcsw, 0u);
  // A spinner never sleeps: over its 800 ms it either ran or waited on the
  // run queue (for the other spinner, or whatever else shares CPU 0 on a busy
  // machine), so CPU time + run-queue wait = its life, whatever the load.
  for (const fp_proc* p : {&pa, &pb}) {
    double life = double(p->cpu_ns + p->runq_wait_ns);
    EXPECT_GT(life, 0.8 * 800e6) << "ran " << p->cpu_ns << " waited " << p->runq_wait_ns;
    EXPECT_LT(life, 1.25 * 800e6) << "ran " << p->cpu_ns << " waited " << p->runq_wait_ns;
  }
  // and each waited at least a good part of the time the other ran
  EXPECT_GT(double(pa.runq_wait_ns), 0.33 * double(pb.cpu_ns)) << "a waited " << pa.runq_wait_ns << " while b ran " << pb.cpu_ns;
  EXPECT_GT(double(pb.runq_wait_ns), 0.33 * double(pa.cpu_ns)) << "b waited " << pb.runq_wait_ns << " while a ran " << pa.cpu_ns;
  // the histogram saw the same waits as the counter
  uint64_t hist_total = 0;
  for (auto v : pa.runq_hist) hist_total += v;
  EXPECT_EQ(hist_total, pa.runq_waits);
  EXPECT_GE(pa.runq_wait_max_ns * pa.runq_waits, pa.runq_wait_ns);
}

// vfork() keeps the parent in TASK_KILLABLE (uninterruptible) until the child
// exits or execs: a real D-state the test controls.
TEST(Sched, UninterruptibleSleepIsMeasuredAndVisibleWhileOngoing) {
  probe();
  reset_events();
  // The parent's real wait (vfork to waitpid) in shared memory: a slow
  // machine (QEMU TCG) may wake the child late, the probe must still match it.
  auto* waited_ns = static_cast<std::atomic<int64_t>*>(
      mmap(nullptr, sizeof(std::atomic<int64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(waited_ns, MAP_FAILED);
  waited_ns->store(0);
  Child c([waited_ns] {
    timespec a{}, b{};
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t k = vfork();
    if (k == 0) {
      usleep(2'000'000);
      _exit(0);
    }
    waitpid(k, nullptr, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    waited_ns->store((b.tv_sec - a.tv_sec) * 1'000'000'000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
  });
  uint32_t pid = uint32_t(c.pid());
  c.release();
  // ongoing: visible before it ends
  bool seen_ongoing = wait_until(
      [&] {
        auto s = live_slot(pid);
        return s && s->dstate_since_ns != 0 && s->dstate_active > 0;
      },
      1500ms);
  EXPECT_TRUE(seen_ongoing) << "no ongoing D-state visible for the vfork parent";
  if (auto s = live_slot(pid)) {
    // deltas over a sample taken mid-way report the ongoing part too
    Sample now = probe().read();
    Sample empty;
    empty.ts_ns = now.ts_ns;
    auto deltas = compute_deltas(empty, now, {}, 4096);
    for (const auto& d : deltas) {
      if (d.key.tgid == pid) {
        EXPECT_GT(d.dstate_ongoing_ns, 0u);
      }
    }
  }
  c.wait();
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  const double waited = double(waited_ns->load());
  munmap(waited_ns, sizeof(std::atomic<int64_t>));
  EXPECT_GE(waited, 2e9);
  EXPECT_NEAR(double(ex->final.dstate_ns), waited, 0.2e9);
  EXPECT_NEAR(double(ex->final.dstate_max_ns), waited, 0.2e9);
  EXPECT_EQ(ex->final.dstate_active, 0);
}

TEST(Sched, HundredForksAreCounted) {
  probe();
  reset_events();
  Child c([] {
    for (int i = 0; i < 100; i++) {
      pid_t k = fork();
      if (k == 0) _exit(0);
      if (k < 0) return 1;
      waitpid(k, nullptr, 0);
    }
    return 0;
  });
  c.release();
  int st = c.wait();
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_GE(ex->final.forks, 100u);
  EXPECT_EQ(ex->final.threads, 0u);
}

TEST(Sched, ExecIsCountedAndRenames) {
  probe();
  reset_events();
  Child c([] {
    execl("/bin/true", "true", (char*)nullptr);
    return 127;
  });
  c.release();
  c.wait();
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->final.execs, 1u);
  EXPECT_STREQ(ex->final.comm, "true");
}

TEST(Sched, ShortLivedProcessesAllExitAndLeaveNoEntries) {
  probe();
  reset_events();
  constexpr int kChildren = 2000;
  size_t threads_before = probe().thread_entries();
  std::vector<pid_t> pids;
  pids.reserve(kChildren);
  for (int i = 0; i < kChildren; i++) {
    pid_t k = fork();
    ASSERT_GE(k, 0);
    if (k == 0) _exit(i & 0x7f);
    pids.push_back(k);
    waitpid(k, nullptr, 0);
    if (i % 200 == 0) events();  // keep the ring drained as a daemon would
  }
  std::set<uint32_t> want(pids.begin(), pids.end());
  bool all = wait_until(
      [&] {
        std::set<uint32_t> got;
        for (const auto& e : events().exits)
          if (want.count(e.final.tgid)) got.insert(e.final.tgid);
        return got.size() == want.size();
      },
      5s, 20ms);
  EXPECT_TRUE(all) << "not every short-lived process produced an exit event";
  int wrong_code = 0;
  for (const auto& e : events().exits) {
    if (!want.count(e.final.tgid)) continue;
    auto idx = std::find(pids.begin(), pids.end(), pid_t(e.final.tgid)) - pids.begin();
    if (decode_exit_code(e.exit_code).status != int(idx & 0x7f)) wrong_code++;
  }
  EXPECT_EQ(wrong_code, 0);
  int leaked = 0;
  for (auto p : pids) leaked += probe().indexed(uint32_t(p)) ? 1 : 0;
  EXPECT_EQ(leaked, 0) << "slots left behind for exited processes";
  // per-thread state goes with the thread (a little slack for the rest of the machine)
  EXPECT_LT(probe().thread_entries(), threads_before + 50) << "thread state leaked";
  Sample s = probe().read();
  for (const auto& p : s.procs) EXPECT_FALSE(want.count(p.tgid)) << "live slot for exited " << p.tgid;
  EXPECT_EQ(probe().drops()[FP_DROP_RINGBUF_FULL], 0u);
}

TEST(Sched, ThreadsShareTheProcessSlot) {
  probe();
  reset_events();
  Child c([] {
    std::thread t1([] { spin_cpu_for(200ms); });
    std::thread t2([] { spin_cpu_for(200ms); });
    t1.join();
    t2.join();
    // join() returns when a thread clears its tid, before its exit tracepoint
    // adds its last on-CPU interval: exiting at once would race that.
    std::this_thread::sleep_for(100ms);
    return 0;
  });
  c.release();
  int status = 0;
  rusage ru{};
  ASSERT_EQ(wait4(c.pid(), &status, 0, &ru), c.pid());
  auto ex = wait_exit(uint32_t(c.pid()), 3s);
  ASSERT_TRUE(ex);
  EXPECT_EQ(ex->final.threads, 2u);
  // all threads' time lands on the process: compare with the kernel's total for it
  double truth = double(rusage_cpu_ns(ru));
  EXPECT_GT(truth, 150e6);
  // The probe charges each thread the kernel's own runtime counter
  // (se.sum_exec_runtime), at its exit and at the last thread's final
  // switch: the same numbers rusage adds up. Measured within 0.02 %; the
  // issue's target is 0.1 %. (Timestamps at switch-in/out lost a whole
  // on-CPU interval, 100-180 ms, about 1 run in 10.)
  // rusage is summed when the thread is released, a few microseconds before
  // its last switch-out, which the probe also counts: under emulation
  // (FP_TEST_TIME_SCALE > 1, the VM runner) that tail is milliseconds (0.7 %
  // seen on 6.1 under TCG), so the bound is 1 % there.
  EXPECT_NEAR(double(ex->final.cpu_ns), truth, (fp::test::time_scale() > 1 ? 0.01 : 0.001) * truth)
      << "probe " << ex->final.cpu_ns << " ns, rusage " << truth << " ns";
}

// A task that never leaves the CPU still shows its CPU time while it runs
// (the per-CPU clock tick closes its interval), not only when it stops.
TEST(Sched, RunningSpinnerIsVisibleWhileItRuns) {
  ASSERT_TRUE(probe().cpu_tick_attached());
  Child c([] {
    spin_cpu_for(3s);
    return 0;
  });
  uint32_t pid = uint32_t(c.pid());
  c.release();
  std::optional<fp_proc> s;
  bool seen = wait_until(
      [&] {
        s = live_slot(pid);
        return s && s->cpu_ns >= 300'000'000u;
      },
      2s);
  EXPECT_TRUE(seen) << "cpu_ns while running: " << (s ? s->cpu_ns : 0);
  EXPECT_TRUE(live_slot(pid).has_value()) << "the spinner should still be running";
  c.kill(SIGKILL);
  c.wait();
}
