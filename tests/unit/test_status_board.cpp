#include "server/status_board.h"

#include <poll.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <time.h>

namespace fp {
namespace {

uint64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// The sampling thread's side, as the daemon's loop does it: sleep on the
// wake fd, build a status only when one is asked for.
class Sampler {
 public:
  explicit Sampler(StatusBoard& b) : b_(b), t_([this] { run(); }) {}
  ~Sampler() {
    stop_ = true;
    t_.join();
  }
  int built() const { return built_.load(); }

 private:
  void run() {
    while (!stop_) {
      pollfd p{b_.wake_fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) > 0) b_.clear_wake();
      if (b_.status_asked()) {
        const uint64_t at = monotonic_now_ns();
        b_.post({{"n", ++built_}}, nullptr, at);
      }
    }
  }
  StatusBoard& b_;
  std::atomic<bool> stop_{false};
  std::atomic<int> built_{0};
  std::thread t_;
};

TEST(StatusBoard, StatusIsBuiltOnlyWhenAskedAndAfterTheRequest) {
  StatusBoard b;
  ASSERT_GE(b.wake_fd(), 0);
  EXPECT_FALSE(b.status_asked());
  Sampler s(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s.built(), 0);  // nobody asked: nothing built
  nlohmann::json first = b.status();
  EXPECT_EQ(first.value("n", 0), 1);
  nlohmann::json second = b.status();  // a status built after this request, not the last one
  EXPECT_EQ(second.value("n", 0), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(s.built(), 2);
  EXPECT_FALSE(b.status_asked());
}

TEST(StatusBoard, RequestWakesTheSamplingThread) {
  StatusBoard b;
  ASSERT_GE(b.wake_fd(), 0);
  std::thread client([&] { b.status(); });
  pollfd p{b.wake_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  EXPECT_TRUE(b.status_asked());
  b.clear_wake();
  b.post({{"n", 1}}, nullptr, monotonic_now_ns());
  client.join();
  EXPECT_FALSE(b.status_asked());
  p.revents = 0;
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // cleared
}

TEST(StatusBoard, StatusBuiltBeforeTheRequestDoesNotAnswerIt) {
  StatusBoard b;
  b.post({{"n", 1}}, nullptr, monotonic_now_ns());
  std::atomic<bool> done{false};
  nlohmann::json got;
  std::thread client([&] {
    got = b.status();
    done = true;
  });
  while (!b.status_asked()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(done.load());  // the old status is not an answer
  b.post({{"n", 2}}, nullptr, monotonic_now_ns());
  client.join();
  EXPECT_EQ(got.value("n", 0), 2);
}

}  // namespace
}  // namespace fp
