// The wall clock and this thread's CPU clock in nanoseconds, one definition
// for the daemon, the forwarder and `top`. (CLOCK_MONOTONIC, which the probe's
// timestamps use, is monotonic_now_ns() in probe/probe.h.)
#pragma once

#include <time.h>

#include <cstdint>

namespace fp {

inline uint64_t clock_now_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// Wall-clock time: what records and logs show, never what intervals are measured with.
inline uint64_t realtime_now_ns() { return clock_now_ns(CLOCK_REALTIME); }

// CPU time this thread has used (a tick's cost).
inline uint64_t thread_cpu_ns() { return clock_now_ns(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace fp
