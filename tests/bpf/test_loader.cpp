// The loader: attach modes, the raw_tp fallback, probe health.
#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;

TEST(Loader, EveryRequiredHookIsAttachedWithTpBtfHere) {
  for (const auto& h : probe().hooks()) {
    if (h.required) {
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
  pr.refresh();
  Child c([] {
    spin_cpu_for(100ms);
    pause();
    return 0;
  });
  uint32_t pid = uint32_t(c.pid());
  c.release();
  std::optional<uint32_t> slot;
  EXPECT_TRUE(wait_until(
      [&] {
        for (uint32_t s : pr.refresh())
          if (pr.slots()[s].tgid == pid && pr.slots()[s].cpu_ns > 50'000'000u) slot = s;
        return slot.has_value();
      },
      2s));
  ASSERT_TRUE(slot);
  // nothing of the child changes while it sleeps in pause(): a refresh after
  // it settled no longer lists its slot
  EXPECT_TRUE(wait_until(
      [&] {
        const auto& ch = pr.refresh();
        return std::find(ch.begin(), ch.end(), *slot) == ch.end();
      },
      2s));
  Sample full;
  pr.read_full(full);
  bool matched = false;
  for (const auto& p : full.procs) {
    if (p.tgid != pid) continue;
    matched = true;
    EXPECT_EQ(p.cpu_ns, pr.slots()[*slot].cpu_ns);
    EXPECT_EQ(p.nvcsw, pr.slots()[*slot].nvcsw);
    EXPECT_EQ(p.start_ns, pr.slots()[*slot].start_ns);
  }
  EXPECT_TRUE(matched);
  c.kill(SIGKILL);
  c.wait();
  EXPECT_TRUE(wait_until(
      [&] {
        pr.refresh();
        return pr.slots()[*slot].tgid != pid;
      },
      2s))
      << "the exited child's slot still shows it";
}
