// No exception leaves a tick, a thread, or the shutdown path: one record that
// cannot be written (a bug, bad_alloc on a huge name) costs that record, not
// the loop, the other records, or the daemon (std::terminate).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>

#include <spdlog/spdlog.h>

namespace fp {

// Runs f(). An exception is logged ("<what> failed: ...") and counted in
// *failures (when given), and guarded() returns false; it never throws.
template <class F>
bool guarded(const char* what, F&& f, std::atomic<uint64_t>* failures = nullptr) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    if (failures) failures->fetch_add(1, std::memory_order_relaxed);
    try {
      spdlog::error("{} failed, continuing: {}", what, e.what());
    } catch (...) {
    }
  } catch (...) {
    if (failures) failures->fetch_add(1, std::memory_order_relaxed);
    try {
      spdlog::error("{} failed, continuing: unknown exception", what);
    } catch (...) {
    }
  }
  return false;
}

}  // namespace fp
