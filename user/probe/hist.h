// Percentiles of the probe's log2 latency histograms.
#pragma once

#include <array>
#include <cstdint>

#include "faultprobe/abi.h"

namespace fp {

using Hist = std::array<uint64_t, FP_HIST_SLOTS>;

// Bucket i holds durations in [2^i, 2^(i+1)) microseconds, bucket 0 [0, 2) us,
// the last bucket everything above. Lower/upper bound of bucket i in ns.
uint64_t hist_bucket_lo_ns(unsigned i);
uint64_t hist_bucket_hi_ns(unsigned i);

// The q-quantile (0 < q <= 1) in ns, interpolated linearly inside the bucket
// that holds the rank, and never above `max_ns` when max_ns > 0 (the exact
// maximum the probe also keeps). 0 for an empty histogram.
uint64_t hist_quantile_ns(const Hist& h, double q, uint64_t max_ns = 0);

// Upper bound (ns) of the highest non-empty bucket, 0 if empty.
uint64_t hist_top_ns(const Hist& h);

// Element-wise after - before, wrapping at 32 bits as the probe's u32 bucket counters do.
// Only for raw probe histograms: sums of several processes may exceed 2^32.
Hist hist_delta(const Hist& after, const Hist& before);

}  // namespace fp
