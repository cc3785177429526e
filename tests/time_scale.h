// Deadlines of the test fixtures, stretched where the machine is slow.
// FP_TEST_TIME_SCALE (default 1) multiplies every polling deadline of the BPF
// and end-to-end fixtures: scripts/vmtest sets it for kernels under software
// emulation (QEMU TCG), so the assertions stay as strict as on the host and
// only the time allowed to reach them grows. Values below 1 count as 1.
#pragma once

#include <chrono>
#include <cstdlib>

namespace fp::test {

inline double time_scale() {
  static const double scale = [] {
    const char* s = std::getenv("FP_TEST_TIME_SCALE");
    double v = s ? std::atof(s) : 1.0;
    return v > 1.0 ? v : 1.0;
  }();
  return scale;
}

template <class Rep, class Period>
std::chrono::milliseconds scaled(std::chrono::duration<Rep, Period> d) {
  return std::chrono::milliseconds(static_cast<int64_t>(
      std::chrono::duration_cast<std::chrono::duration<double, std::milli>>(d).count() * time_scale()));
}

}  // namespace fp::test
