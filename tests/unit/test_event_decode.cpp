// The ring buffer's records (probe/event_decode.h) as the probe writes them:
// each type lands in its place of the batch with every field, and a short or
// unknown record is refused (the loader counts it as malformed).
#include <gtest/gtest.h>

#include <cstring>

#include "event_payload.h"
#include "faultprobe/abi.h"
#include "probe/event_decode.h"

namespace fp {
namespace {

using test::hdr;

TEST(EventDecode, ExitCarriesTheFinalCounters) {
  fp_proc p{};
  p.gen = 3;
  p.tgid = 42;
  p.start_ns = 1234;
  std::strcpy(p.comm, "worker");
  p.cpu_ns = 5'000'000;
  fp_exit_event e;
  size_t len = test::pack_exit(p, 0x8b, e, 24);  // core dumped, SIGSEGV
  EventBatch b;
  ASSERT_TRUE(decode_event(&e, len, b));
  ASSERT_EQ(b.exits.size(), 1u);
  EXPECT_EQ(b.exits[0].ts_ns, test::kEventTs);
  EXPECT_EQ(b.exits[0].exit_code, 0x8bu);
  EXPECT_EQ(b.exits[0].final.tgid, 42u);
  EXPECT_EQ(b.exits[0].final.cpu_ns, 5'000'000u);
  EXPECT_STREQ(b.exits[0].final.comm, "worker");
}

// Every word of the slot survives the packing, the first and the last
// (kernel_errors, in the bitmap's second word) included, and the unpacked
// slot is the slot, byte for byte.
TEST(EventDecode, PackedExitRecordUnpacksToTheWholeSlot) {
  fp_proc p{};
  p.gen = 7;
  p.tgid = 4242;
  p.ppid = 1;
  p.start_ns = 99;
  std::strcpy(p.comm, "\xff\x01odd name");
  p.cpu_ns = 1;
  p.runq_hist[0] = 3;
  p.runq_hist[31] = 1;
  p.io_lat_hist[17] = 9;
  p.rss_pages[2] = -5;
  p.net_drops = 11;
  p.kernel_errors = 2;
  fp_exit_event e;
  for (unsigned pad : {0u, 24u, 40u, unsigned(FP_PROC_WORDS)}) {
    size_t len = test::pack_exit(p, 0, e, pad);
    EventBatch b;
    ASSERT_TRUE(decode_event(&e, len, b)) << pad;
    ASSERT_EQ(b.exits.size(), 1u);
    EXPECT_EQ(std::memcmp(&b.exits[0].final, &p, sizeof p), 0) << pad;
  }
  // every word set: the longest record
  fp_proc full;
  std::memset(&full, 0x5a, sizeof full);
  size_t len = test::pack_exit(full, 0, e);
  EXPECT_EQ(len, sizeof(fp_exit_event));
  EventBatch b;
  ASSERT_TRUE(decode_event(&e, len, b));
  EXPECT_EQ(std::memcmp(&b.exits[0].final, &full, sizeof full), 0);
}

// A record that does not add up is refused whole, never half-read: shorter
// than the words its bitmap announces, a count that is not the bitmap's,
// bits past the slot's last word.
TEST(EventDecode, ExitRecordsThatDoNotAddUpAreRefused) {
  fp_proc p{};
  p.gen = 1;
  p.tgid = 5;
  p.cpu_ns = 10;
  p.kernel_errors = 1;
  fp_exit_event e;
  size_t len = test::pack_exit(p, 0, e);
  EventBatch b;
  EXPECT_FALSE(decode_event(&e, len - 1, b));
  fp_exit_event bad = e;
  bad.nwords += 1;
  EXPECT_FALSE(decode_event(&bad, sizeof bad, b));
  bad = e;
  bad.present[1] |= 1ull << (FP_PROC_WORDS - 64);  // word 82 does not exist
  bad.nwords += 1;
  EXPECT_FALSE(decode_event(&bad, sizeof bad, b));
  EXPECT_TRUE(b.exits.empty());
  EXPECT_TRUE(decode_event(&e, len, b));
}

TEST(EventDecode, SignalOomAndHang) {
  fp_signal_event s{};
  hdr(s.hdr, FP_EV_FATAL_SIGNAL, 10, 11, "victim");
  s.sig = 11;
  s.tid = 12;
  s.sender_tgid = 13;
  s.result = 0;
  s.code = -6;
  fp_oom_event o{};
  hdr(o.hdr, FP_EV_OOM_VICTIM, 20, 21, "leaker");
  o.total_vm_kb = 1;
  o.anon_rss_kb = 2;
  o.file_rss_kb = 3;
  o.shmem_rss_kb = 4;
  fp_hang_event h{};
  hdr(h.hdr, FP_EV_HANG, 30, 31, "stuck");
  h.tid = 32;
  h.dstate_since_ns = 33;
  EventBatch b;
  ASSERT_TRUE(decode_event(&s, sizeof s, b));
  ASSERT_TRUE(decode_event(&o, sizeof o, b));
  ASSERT_TRUE(decode_event(&h, sizeof h, b));
  ASSERT_EQ(b.signals.size(), 1u);
  EXPECT_EQ(b.signals[0].target, (ProcKey{10, 11}));
  EXPECT_EQ(b.signals[0].comm, "victim");
  EXPECT_EQ(b.signals[0].sig, 11u);
  EXPECT_EQ(b.signals[0].tid, 12u);
  EXPECT_EQ(b.signals[0].sender_tgid, 13u);
  EXPECT_EQ(b.signals[0].code, -6);
  ASSERT_EQ(b.ooms.size(), 1u);
  EXPECT_EQ(b.ooms[0].victim, (ProcKey{20, 21}));
  EXPECT_EQ(b.ooms[0].comm, "leaker");
  EXPECT_EQ(b.ooms[0].total_vm_kb + b.ooms[0].anon_rss_kb + b.ooms[0].file_rss_kb, 6u);
  EXPECT_EQ(b.ooms[0].shmem_rss_kb, 4u);
  ASSERT_EQ(b.hangs.size(), 1u);
  EXPECT_EQ(b.hangs[0].proc, (ProcKey{30, 31}));
  EXPECT_EQ(b.hangs[0].tid, 32u);
  EXPECT_EQ(b.hangs[0].dstate_since_ns, 33u);
}

// A comm that fills its field has no NUL: it is cut at FP_COMM_LEN.
TEST(EventDecode, FullCommIsBounded) {
  fp_hang_event h{};
  hdr(h.hdr, FP_EV_HANG, 1, 1, "");
  std::memset(h.hdr.comm, 'x', FP_COMM_LEN);
  EventBatch b;
  ASSERT_TRUE(decode_event(&h, sizeof h, b));
  EXPECT_EQ(b.hangs.at(0).comm, std::string(FP_COMM_LEN, 'x'));
}

TEST(EventDecode, HardwareEventsGoToTheirDecoder) {
  fp_aer_event a{};
  hdr(a.hdr, FP_EV_HW_PCIE, 0, 0, "");
  a.severity = FP_AER_CORRECTABLE;
  std::strcpy(a.dev_name, "0000:03:00.0");
  EventBatch b;
  ASSERT_TRUE(decode_event(&a, sizeof a, b));
  ASSERT_EQ(b.hw.size(), 1u);
  EXPECT_EQ(b.hw[0].device, "0000:03:00.0");
}

TEST(EventDecode, ShortOrUnknownRecordsAreRefused) {
  fp_proc p{};
  p.gen = 1;
  p.tgid = 1;
  fp_exit_event e;
  const size_t len = test::pack_exit(p, 0, e);
  fp_event_hdr unknown{};
  hdr(unknown, 9999, 1, 1, "x");
  EventBatch b;
  EXPECT_FALSE(decode_event(&e, len - 1, b));
  EXPECT_FALSE(decode_event(&e, sizeof(fp_event_hdr) - 1, b));
  EXPECT_FALSE(decode_event(&e, 0, b));
  EXPECT_FALSE(decode_event(&unknown, sizeof unknown, b));
  fp_signal_event s{};
  hdr(s.hdr, FP_EV_FATAL_SIGNAL, 1, 1, "x");
  EXPECT_FALSE(decode_event(&s, sizeof s - 4, b));
  EXPECT_TRUE(b.exits.empty());
  EXPECT_TRUE(b.signals.empty());
  EXPECT_TRUE(b.hw.empty());
}

}  // namespace
}  // namespace fp
