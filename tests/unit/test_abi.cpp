// The ABI header is pinned by static asserts inside it (checked by clang when
// the probe builds and by g++ here). This test adds the runtime facts the
// loader relies on.
#include <gtest/gtest.h>

#include <type_traits>

#include "faultprobe/abi.h"

TEST(Abi, StructsArePlainData) {
  EXPECT_TRUE(std::is_trivially_copyable_v<fp_proc>);
  EXPECT_TRUE(std::is_standard_layout_v<fp_proc>);
  EXPECT_TRUE(std::is_trivially_copyable_v<fp_exit_event>);
  EXPECT_TRUE(std::is_standard_layout_v<fp_signal_event>);
}

TEST(Abi, EveryEventStartsWithTheHeader) {
  EXPECT_EQ(offsetof(fp_exit_event, hdr), 0u);
  EXPECT_EQ(offsetof(fp_signal_event, hdr), 0u);
  EXPECT_EQ(offsetof(fp_oom_event, hdr), 0u);
  EXPECT_EQ(offsetof(fp_hang_event, hdr), 0u);
}

TEST(Abi, HistogramCoversHours) {
  // bucket 31 starts at 2^31 us, about 36 minutes: a stall of any real length lands in range
  EXPECT_EQ(FP_HIST_SLOTS, 32);
}
