// Time and signals behind interfaces, so the rate limits, the duty cycle and
// the supervisor's backoff run against a fake clock in unit tests.
#pragma once

#include <cstdint>

namespace fp {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now_ns() const = 0;  // CLOCK_MONOTONIC
};

// The real CLOCK_MONOTONIC.
class MonotonicClock : public Clock {
 public:
  uint64_t now_ns() const override;
};

// A clock tests move by hand.
class FakeClock : public Clock {
 public:
  explicit FakeClock(uint64_t start_ns = 1'000'000'000ull) : now_(start_ns) {}
  uint64_t now_ns() const override { return now_; }
  void advance(uint64_t ns) { now_ += ns; }
  void set(uint64_t ns) { now_ = ns; }

 private:
  uint64_t now_;
};

}  // namespace fp
