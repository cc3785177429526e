#include "probe/hist.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace fp {
namespace {

constexpr uint64_t kUs = 1000;

TEST(HistBuckets, Bounds) {
  EXPECT_EQ(hist_bucket_lo_ns(0), 0u);
  EXPECT_EQ(hist_bucket_hi_ns(0), 2 * kUs);
  EXPECT_EQ(hist_bucket_lo_ns(1), 2 * kUs);
  EXPECT_EQ(hist_bucket_hi_ns(1), 4 * kUs);
  EXPECT_EQ(hist_bucket_lo_ns(10), 1024 * kUs);
  EXPECT_EQ(hist_bucket_hi_ns(10), 2048 * kUs);
  // The last bucket is open-ended; 2^32 us stands in for its upper bound.
  EXPECT_EQ(hist_bucket_lo_ns(31), (uint64_t{1} << 31) * kUs);
  EXPECT_EQ(hist_bucket_hi_ns(31), (uint64_t{1} << 32) * kUs);
}

TEST(HistBuckets, Contiguous) {
  for (unsigned i = 1; i < FP_HIST_SLOTS; ++i) {
    EXPECT_EQ(hist_bucket_lo_ns(i), hist_bucket_hi_ns(i - 1)) << i;
    EXPECT_LT(hist_bucket_lo_ns(i), hist_bucket_hi_ns(i)) << i;
  }
}

TEST(HistBuckets, OutOfRangeIsTheLastBucket) {
  EXPECT_EQ(hist_bucket_lo_ns(FP_HIST_SLOTS), hist_bucket_lo_ns(FP_HIST_SLOTS - 1));
  EXPECT_EQ(hist_bucket_hi_ns(1000), hist_bucket_hi_ns(FP_HIST_SLOTS - 1));
}

TEST(HistQuantile, EmptyIsZero) {
  Hist h{};
  EXPECT_EQ(hist_quantile_ns(h, 0.5), 0u);
  EXPECT_EQ(hist_quantile_ns(h, 0.99, 12345), 0u);
  EXPECT_EQ(hist_quantile_ns(h, 1.0), 0u);
}

TEST(HistQuantile, InterpolatesInsideTheBucket) {
  Hist h{};
  h[3] = 4;  // [8, 16) us
  // rank k of 4 sits at k/4 of the width.
  EXPECT_EQ(hist_quantile_ns(h, 0.25), 10 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 0.5), 12 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 0.75), 14 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 1.0), 16 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 0.01), 10 * kUs);  // rank rounds up to 1
}

TEST(HistQuantile, FindsTheBucketHoldingTheRank) {
  Hist h{};
  h[0] = 90;  // [0, 2) us
  h[5] = 10;  // [32, 64) us
  EXPECT_EQ(hist_quantile_ns(h, 0.5), 1111u);       // rank 50 of 90 in bucket 0: 2000 * 50/90
  EXPECT_EQ(hist_quantile_ns(h, 0.9), 2 * kUs);     // rank 90: top of bucket 0
  EXPECT_EQ(hist_quantile_ns(h, 0.91), 35200u);     // rank 91: first of 10 in [32, 64) us
  EXPECT_EQ(hist_quantile_ns(h, 0.99), 60800u);     // rank 99: 9/10 of the way
  EXPECT_EQ(hist_quantile_ns(h, 1.0), 64 * kUs);
}

TEST(HistQuantile, RankIsNotBumpedByFloatingPointNoise) {
  // 0.07 * 100 is 7.000000000000001 in double; the rank must still be 7.
  Hist h{};
  h[0] = 7;
  h[1] = 93;
  EXPECT_EQ(hist_quantile_ns(h, 0.07), 2 * kUs);  // the 7th sample is the last one in bucket 0
  EXPECT_GT(hist_quantile_ns(h, 0.08), 2 * kUs);
}

TEST(HistQuantile, ClampedToExactMax) {
  Hist h{};
  h[3] = 4;  // [8, 16) us
  EXPECT_EQ(hist_quantile_ns(h, 0.99, 9 * kUs), 9 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 0.25, 9 * kUs), 9 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 0.25, 100 * kUs), 10 * kUs);  // a max above the estimate changes nothing
  EXPECT_EQ(hist_quantile_ns(h, 0.99, 0), 16 * kUs);          // 0 = no known max
}

TEST(HistQuantile, OpenEndedLastBucket) {
  Hist h{};
  h[31] = 2;
  EXPECT_EQ(hist_quantile_ns(h, 0.5), (uint64_t{3} << 30) * kUs);  // halfway between 2^31 and 2^32 us
  EXPECT_EQ(hist_quantile_ns(h, 1.0), (uint64_t{1} << 32) * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 1.0, 3'000'000'000'000u), 3'000'000'000'000u);  // 50 min, exact
}

TEST(HistQuantile, OutOfRangeQ) {
  Hist h{};
  h[2] = 1;  // [4, 8) us
  h[4] = 1;  // [16, 32) us
  EXPECT_EQ(hist_quantile_ns(h, 0.0), 8 * kUs);   // the smallest sample's estimate
  EXPECT_EQ(hist_quantile_ns(h, -1.0), 8 * kUs);
  EXPECT_EQ(hist_quantile_ns(h, 7.0), 32 * kUs);  // q > 1 is the maximum
}

TEST(HistQuantile, LargeCountsDoNotOverflow) {
  Hist h{};
  h[30] = std::numeric_limits<uint32_t>::max();
  h[31] = std::numeric_limits<uint32_t>::max();
  uint64_t lo = hist_bucket_lo_ns(31), hi = hist_bucket_hi_ns(31);
  uint64_t p = hist_quantile_ns(h, 0.75);
  EXPECT_GE(p, lo);
  EXPECT_LE(p, hi);
  EXPECT_NEAR(static_cast<double>(p), static_cast<double>(lo + (hi - lo) / 2), (hi - lo) * 1e-6);
}

TEST(HistQuantile, Monotonic) {
  Hist h{};
  h[0] = 3;
  h[4] = 17;
  h[9] = 5;
  h[20] = 1;
  uint64_t prev = 0;
  for (int i = 1; i <= 100; ++i) {
    uint64_t v = hist_quantile_ns(h, i / 100.0);
    EXPECT_GE(v, prev) << "q=" << i / 100.0;
    prev = v;
  }
  EXPECT_EQ(prev, hist_bucket_hi_ns(20));
}

TEST(HistTop, HighestNonEmptyBucket) {
  Hist h{};
  EXPECT_EQ(hist_top_ns(h), 0u);
  h[0] = 1;
  EXPECT_EQ(hist_top_ns(h), 2 * kUs);
  h[7] = 1;
  h[3] = 100;
  EXPECT_EQ(hist_top_ns(h), 256 * kUs);
  h[31] = 1;
  EXPECT_EQ(hist_top_ns(h), (uint64_t{1} << 32) * kUs);
}

TEST(HistDelta, ElementWise) {
  Hist before{}, after{};
  before[0] = 5;
  after[0] = 8;
  after[4] = 2;
  before[9] = 7;
  after[9] = 7;
  Hist d = hist_delta(after, before);
  EXPECT_EQ(d[0], 3u);
  EXPECT_EQ(d[4], 2u);
  EXPECT_EQ(d[9], 0u);
  for (unsigned i : {1u, 2u, 3u, 5u, 31u}) EXPECT_EQ(d[i], 0u) << i;
}

TEST(HistDelta, WrapsAroundLikeU32) {
  Hist before{}, after{};
  before[2] = 0xFFFFFFF0u;  // u32 counter about to wrap
  after[2] = 0x10u;         // ... and wrapped
  before[3] = 0xFFFFFFFFu;
  after[3] = 0xFFFFFFFFu;
  Hist d = hist_delta(after, before);
  EXPECT_EQ(d[2], 0x20u);
  EXPECT_EQ(d[3], 0u);
}

TEST(HistDelta, OfIdenticalIsEmpty) {
  Hist h{};
  h[1] = 10;
  h[30] = 4;
  Hist d = hist_delta(h, h);
  EXPECT_EQ(hist_top_ns(d), 0u);
  EXPECT_EQ(hist_quantile_ns(d, 0.99), 0u);
}

}  // namespace
}  // namespace fp
