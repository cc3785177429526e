// The loader: attach modes, the raw_tp fallback, probe health.
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

TEST(Loader, EveryRequiredHookIsAttachedWithTpBtfHere) {
  for (const auto& h : probe().hooks()) {
    if (h.required) {
      // sched_info counts the run-queue waits here: the wakeup hooks are not loaded
      if (h.name == "sched_wakeup" || h.name == "sched_wakeup_new")
        EXPECT_EQ(h.mode, AttachMode::NotNeeded) << h.name << ": " << h.reason;
      else
        EXPECT_EQ(h.mode, AttachMode::TpBtf) << h.name << ": " << h.reason;
    }
  }
}

// tp_btf hooks keep per-thread state in task storage where the kernel lets
// every thread-state program (and the perf-event tick) use it: 6.18 does.
TEST(Loader, ThreadStateIsInTaskStorageHere) {
  EXPECT_TRUE(probe().thread_task_storage());
  EXPECT_LE(probe().thread_entries(), 1u) << "the tid hash should be unused";
}

TEST(Loader, RawTracepointFallbackCountsToo) {
  ProbeOptions opts;
  opts.force_raw_tp = true;
  opts.max_procs = 4096;
  auto raw = Probe::start(opts);
  ASSERT_TRUE(raw) << raw.error().message;
  for (const auto& h : (*raw)->hooks()) {
    if (h.required) {
      // the wakeup hooks are not needed where sched_info counts the waits
      if ((h.name == "sched_wakeup" || h.name == "sched_wakeup_new") && (*raw)->runq_from_sched_info())
        EXPECT_EQ(h.mode, AttachMode::NotNeeded) << h.name;
      else
        EXPECT_EQ(h.mode, AttachMode::RawTp) << h.name;
    }
  }
  // raw_tp arguments cannot key task storage: the tid hash it is
  EXPECT_FALSE((*raw)->thread_task_storage());
  Child c([] {
    spin_cpu_for(200ms);
    return 0;
  });
  c.release();
  c.wait();
  EventBatch batch;
  bool got = wait_until(
      [&] {
        (*raw)->drain(batch);
        for (const auto& e : batch.exits)
          if (e.final.tgid == uint32_t(c.pid())) return e.final.cpu_ns > 150'000'000u;
        return false;
      },
      3s);
  EXPECT_TRUE(got) << "the raw_tp probe did not account the spinner";
}

// Run-queue waits stamped at wakeup (kernels without sched_info) count the
// same waits as the kernel's sched_info path the shared probe uses here.
TEST(Loader, WakeupStampsCountRunqWaitsToo) {
  ASSERT_TRUE(probe().runq_from_sched_info())
      << "this kernel keeps sched_info (CONFIG_SCHED_INFO): the default probe must use it";
  ProbeOptions opts;
  opts.runq_from_wakeups = true;
  opts.max_procs = 4096;
  auto wk = Probe::start(opts);
  ASSERT_TRUE(wk) << wk.error().message;
  EXPECT_FALSE((*wk)->runq_from_sched_info());
  for (const auto& h : (*wk)->hooks())
    if (h.name == "sched_wakeup") {
      EXPECT_EQ(h.mode, AttachMode::TpBtf);
    }
  auto body = [] {
    pin_to_cpu(0);
    spin_cpu_for(300ms);
    return 0;
  };
  Child a(body), b(body);
  a.release();
  b.release();
  a.wait();
  b.wait();
  EventBatch batch;
  std::optional<fp_proc> fa, fb;
  bool got = wait_until(
      [&] {
        (*wk)->drain(batch);
        for (const auto& e : batch.exits) {
          if (e.final.tgid == uint32_t(a.pid())) fa = e.final;
          if (e.final.tgid == uint32_t(b.pid())) fb = e.final;
        }
        return fa && fb;
      },
      3s);
  ASSERT_TRUE(got) << "no exit records for the two spinners";
  for (const fp_proc* p : {&*fa, &*fb}) {
    EXPECT_GT(p->runq_waits, 0u);
    EXPECT_GT(p->runq_wait_ns, 10'000'000u) << "two spinners on one CPU wait for each other";
    uint64_t hist = 0;
    for (auto v : p->runq_hist) hist += v;
    EXPECT_EQ(hist, p->runq_waits);
  }
}

TEST(Loader, ReadingTheSlotsIsConsistent) {
  Sample s;
  // a freshly attached probe knows a process once it has been scheduled
  EXPECT_TRUE(wait_until(
      [&] {
        s = probe().read();
        return s.procs.size() > 1;
      },
      2s));
  EXPECT_LE(s.procs.size(), probe().slots_high_water());
  std::set<uint32_t> seen;
  for (const auto& p : s.procs) {
    EXPECT_NE(p.tgid, 0u);
    EXPECT_EQ(p.gen & 1, 1u);
    EXPECT_TRUE(seen.insert(p.tgid).second) << "tgid " << p.tgid << " twice";
  }
  EXPECT_EQ(probe().malformed_events(), 0u);
}

// The incremental refresh must see exactly what a full copy sees: a process
// that runs is in the changed list, one that exits leaves a free slot.
TEST(Loader, IncrementalRefreshMatchesAFullRead) {
  Probe& pr = probe();
  SlotCopies seen;
  seen.refresh(pr);
  int done[2];
  ASSERT_EQ(pipe(done), 0);
  Child c([&] {
    spin_cpu_for(100ms);
    char b = 1;
    if (write(done[1], &b, 1) != 1) return 1;
    pause();
    return 0;
  });
  close(done[1]);
  uint32_t pid = uint32_t(c.pid());
  c.release();
  // settled is a state, not a time: the child said it stopped spinning, and
  // /proc shows it asleep (pause() is its only sleep after that write)
  char b = 0;
  ASSERT_EQ(read(done[0], &b, 1), 1);
  close(done[0]);
  ASSERT_TRUE(wait_until([&] { return proc_state(pid) == 'S'; }, 10s)) << "the child never slept in pause()";
  std::optional<uint32_t> slot;
  EXPECT_TRUE(wait_until(
      [&] {
        seen.refresh(pr);
        for (const auto& [s, p] : seen.by_slot)
          if (!slot && p.tgid == pid && p.cpu_ns > 50'000'000u) slot = s;
        return slot.has_value();
      },
      2s));
  ASSERT_TRUE(slot);
  // nothing of the child changes while it sleeps in pause(): a refresh after
  // it settled no longer lists its slot
  EXPECT_TRUE(wait_until(
      [&] {
        const auto& ch = seen.refresh(pr);
        return std::find(ch.begin(), ch.end(), *slot) == ch.end();
      },
      2s));
  Sample full;
  pr.read_full(full);
  bool matched = false;
  for (const auto& p : full.procs) {
    if (p.tgid != pid) continue;
    matched = true;
    EXPECT_EQ(p.cpu_ns, seen[*slot].cpu_ns);
    EXPECT_EQ(p.nvcsw, seen[*slot].nvcsw);
    EXPECT_EQ(p.start_ns, seen[*slot].start_ns);
    EXPECT_EQ(p.cpu_ns, pr.copy(*slot).value_or(fp_proc{}).cpu_ns);
  }
  EXPECT_TRUE(matched);
  c.kill(SIGKILL);
  c.wait();
  EXPECT_TRUE(wait_until(
      [&] {
        seen.refresh(pr);
        return seen[*slot].tgid != pid;
      },
      2s))
      << "the exited child's slot still shows it";
}
