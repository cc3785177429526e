#include "probe/hist.h"

#include <algorithm>
#include <cmath>

namespace fp {
namespace {

constexpr uint64_t kNsPerUs = 1000;
constexpr unsigned kLast = FP_HIST_SLOTS - 1;

}  // namespace

// Indexes past the end are treated as the last (open-ended) bucket.
uint64_t hist_bucket_lo_ns(unsigned i) {
  i = std::min(i, kLast);
  return i == 0 ? 0 : (uint64_t{1} << i) * kNsPerUs;
}

// The last bucket has no upper bound; 2^FP_HIST_SLOTS us stands in for one so
// interpolation inside it stays finite (the caller's exact max_ns clamps it).
uint64_t hist_bucket_hi_ns(unsigned i) {
  i = std::min(i, kLast);
  return (uint64_t{1} << (i + 1)) * kNsPerUs;
}

uint64_t hist_quantile_ns(const Hist& h, double q, uint64_t max_ns) {
  uint64_t total = 0;
  for (uint64_t c : h) total += c;
  if (total == 0) return 0;

  // rank = ceil(q * total) in [1, total]. The small epsilon keeps products
  // like 0.07 * 100 = 7.000000000000001 from rounding up to the next rank.
  if (!(q > 0)) q = 0;  // also catches NaN
  q = std::min(q, 1.0);
  double r = std::ceil(q * static_cast<double>(total) - 1e-9);
  uint64_t rank = r < 1 ? 1 : static_cast<uint64_t>(r);
  rank = std::min(rank, total);

  uint64_t below = 0;  // samples in buckets before i
  for (unsigned i = 0; i < FP_HIST_SLOTS; ++i) {
    uint64_t count = h[i];
    if (count == 0 || below + count < rank) {
      below += count;
      continue;
    }
    uint64_t lo = hist_bucket_lo_ns(i), hi = hist_bucket_hi_ns(i);
    // Position of the rank inside the bucket: the k-th of n samples sits at k/n of the width.
    unsigned __int128 offset = static_cast<unsigned __int128>(hi - lo) * (rank - below) / count;
    uint64_t v = lo + static_cast<uint64_t>(offset);
    return max_ns > 0 ? std::min(v, max_ns) : v;
  }
  return 0;  // unreachable: rank <= total
}

uint64_t hist_top_ns(const Hist& h) {
  for (unsigned i = FP_HIST_SLOTS; i-- > 0;) {
    if (h[i] != 0) return hist_bucket_hi_ns(i);
  }
  return 0;
}

Hist hist_delta(const Hist& after, const Hist& before) {
  Hist d{};
  for (unsigned i = 0; i < FP_HIST_SLOTS; ++i) {
    d[i] = static_cast<uint32_t>(static_cast<uint32_t>(after[i]) - static_cast<uint32_t>(before[i]));
  }
  return d;
}

}  // namespace fp
