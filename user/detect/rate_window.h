// Events counted over a sliding time window: the rate logic of corrected
// hardware errors (a burst of them is a leading indicator of a failure).
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

namespace fp {

class RateWindow {
 public:
  // `n` events at `ts_ns` (ts must not go backwards; an older one counts as now).
  void add(uint64_t ts_ns, uint64_t n) {
    if (!q_.empty() && ts_ns < q_.back().first) ts_ns = q_.back().first;
    if (!q_.empty() && q_.back().first == ts_ns)
      q_.back().second += n;
    else
      q_.emplace_back(ts_ns, n);
    sum_ += n;
    while (q_.size() > kMaxEntries) {  // bounded: merge the oldest two
      auto oldest = q_.front();
      q_.pop_front();
      q_.front().second += oldest.second;
    }
  }
  // Events in (now - window, now]; forgets older ones.
  uint64_t count(uint64_t now_ns, uint64_t window_ns) {
    const uint64_t horizon = now_ns > window_ns ? now_ns - window_ns : 0;
    while (!q_.empty() && q_.front().first <= horizon && window_ns > 0) {
      sum_ -= q_.front().second;
      q_.pop_front();
    }
    return sum_;
  }
  bool empty() const { return q_.empty(); }

 private:
  static constexpr size_t kMaxEntries = 4096;
  std::deque<std::pair<uint64_t, uint64_t>> q_;
  uint64_t sum_ = 0;
};

}  // namespace fp
