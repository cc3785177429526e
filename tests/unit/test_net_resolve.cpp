// When the daemon walks for socket owners (probe/net_resolve.h): only when
// events wait, not within the interval of the last walk, backing off while
// walks charge nobody, back to the minimum once one charges someone.
#include <gtest/gtest.h>

#include <vector>

#include "probe/net_resolve.h"

using fp::NetResolvePacer;

namespace {
constexpr uint64_t kMs = 1'000'000ull;
}

TEST(NetResolvePacer, WalksAtOnceWhenEventsFirstWaitAndNotWhenNoneDo) {
  NetResolvePacer p(500 * kMs, 16'000 * kMs);
  EXPECT_FALSE(p.due(0, 1'000 * kMs));  // nothing ever waited
  EXPECT_TRUE(p.due(3, 1'000 * kMs));   // the first event: no interval to wait out
  p.walked(3, 1'000 * kMs, true);
  EXPECT_FALSE(p.due(3, 60'000 * kMs));  // nothing new since the walk began
}

TEST(NetResolvePacer, NewEventsWaitForTheIntervalSinceTheLastWalk) {
  NetResolvePacer p(500 * kMs, 16'000 * kMs);
  p.walked(1, 1'000 * kMs, true);
  EXPECT_FALSE(p.due(2, 1'499 * kMs));
  EXPECT_TRUE(p.due(2, 1'500 * kMs));
}

TEST(NetResolvePacer, BacksOffWhileWalksChargeNobodyAndResetsWhenOneDoes) {
  NetResolvePacer p(500 * kMs, 4'000 * kMs);
  uint64_t t = 0, n = 0;
  std::vector<uint64_t> intervals;
  for (int i = 0; i < 6; i++) {
    p.walked(++n, t, false);  // sockets nobody has open: charged nobody
    intervals.push_back(p.interval_ns() / kMs);
    t += p.interval_ns();
  }
  EXPECT_EQ(intervals, (std::vector<uint64_t>{1'000, 2'000, 4'000, 4'000, 4'000, 4'000}));
  EXPECT_FALSE(p.due(n + 1, t - 1));  // within the 4 s interval of the last walk (at t - 4 s)
  p.walked(++n, t, true);
  EXPECT_EQ(p.interval_ns(), 500 * kMs);
  EXPECT_TRUE(p.due(n + 1, t + 500 * kMs));
}

TEST(NetResolvePacer, AMaximumBelowTheMinimumIsTheMinimum) {
  NetResolvePacer p(500 * kMs, 100 * kMs);
  p.walked(1, 0, false);
  EXPECT_EQ(p.interval_ns(), 500 * kMs);
}

TEST(NetResolveStatus, JsonSaysWhyThereIsNoWalk) {
  fp::NetResolveStatus s;
  s.reason = "the kernel has no BPF task-file iterator";
  s.unresolved_events = 7;
  auto j = fp::net_resolve_status_json(s);
  EXPECT_EQ(j["walk"], false);
  EXPECT_EQ(j["reason"], "the kernel has no BPF task-file iterator");
  EXPECT_EQ(j["unresolved_events"], 7u);
  s.walk = true;
  s.reason.clear();
  EXPECT_FALSE(fp::net_resolve_status_json(s).contains("reason"));
}
