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
  Child c([] {
    spin_for(200ms);
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
