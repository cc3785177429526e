#include "server/status_board.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "util/clock.h"
#include "util/text.h"

namespace fp {
namespace {

// CLOCK_MONOTONIC, as the sampling thread's times (monotonic_now_ns() is the
// probe library's, which this one does not link).
uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

StatusBoard::StatusBoard() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

StatusBoard::~StatusBoard() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void StatusBoard::wake() {
  if (wake_fd_ < 0) return;  // no eventfd: requests wait for the next tick
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN: the counter is full, the loop is woken anyway
}

void StatusBoard::clear_wake() {
  if (wake_fd_ < 0) return;
  uint64_t n = 0;
  ssize_t r = ::read(wake_fd_, &n, sizeof n);
  (void)r;
}

bool StatusBoard::status_asked() const {
  return status_asked_ns_.load(std::memory_order_acquire) > status_built_ns_.load(std::memory_order_relaxed);
}

bool StatusBoard::wanted(uint64_t now) const {
  uint64_t asked = wanted_ns_.load(std::memory_order_relaxed);
  return asked != 0 && now - std::min(now, asked) < kWantedNs;
}

void StatusBoard::post(nlohmann::json status, std::shared_ptr<const DaemonView> view, uint64_t now) {
  const bool rows = view != nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    status_ = std::move(status);
    status_built_ns_.store(now, std::memory_order_relaxed);
    if (rows) {
      view_ = std::move(view);
      ++gen_;
      built_ns_ = now;
    }
  }
  cv_.notify_all();
}

std::string StatusBoard::view_json() {
  const uint64_t asked = now_ns();
  wanted_ns_.store(asked, std::memory_order_relaxed);
  wake();  // a first request (or one after a pause) need not wait for the next tick
  std::unique_lock<std::mutex> g(mu_);
  // Rows are built only while wanted: the first request (or one after a
  // pause) waits for the sampling thread's next tick, at most a second.
  cv_.wait_until(g, std::chrono::steady_clock::now() + std::chrono::seconds(1), [&] {
    return view_ != nullptr && asked - std::min(asked, built_ns_) < kFreshNs;
  });
  if (view_ == nullptr) return "{}";
  if (json_gen_ != gen_) {
    // Serialized here, on the asking thread, once per view.
    std::shared_ptr<const DaemonView> v = view_;
    g.unlock();
    std::string text = safe_dump(view_to_json(*v));
    g.lock();
    if (view_ == v) {
      view_json_ = std::move(text);
      json_gen_ = gen_;
    } else {
      return text;
    }
  }
  return view_json_;
}

nlohmann::json StatusBoard::status() {
  const uint64_t asked = now_ns();
  // Raised only: of two clients, the later request is the one to answer.
  uint64_t prev = status_asked_ns_.load(std::memory_order_relaxed);
  while (prev < asked && !status_asked_ns_.compare_exchange_weak(prev, asked, std::memory_order_acq_rel)) {
  }
  wake();
  std::unique_lock<std::mutex> g(mu_);
  cv_.wait_until(g, std::chrono::steady_clock::now() + std::chrono::nanoseconds(kStatusWaitNs),
                 [&] { return status_built_ns_.load(std::memory_order_relaxed) >= asked; });
  return status_;
}

}  // namespace fp
