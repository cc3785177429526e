// The action worker (issue 15 item 6): long actions (a criu dump, systemctl)
// run off the sampling loop, one per target, bounded, with nothing thrown
// escaping, and a shutdown that ends within its bound; the command runner's
// cancel flag and the keepalive that only the loop's thread pings.
#include "act/action_worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "act/real_actuator.h"
#include "act/systemd.h"
#include "fake_command_runner.h"
#include "fake_tree.h"
#include "../time_scale.h"
#include "util/keepalive.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Polls (draining) until pred holds or the deadline passes.
bool drain_until(ActionWorker& w, const std::function<bool()>& pred, std::chrono::milliseconds deadline) {
  const auto end = steady::now() + deadline;
  while (steady::now() < end) {
    w.drain();
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  w.drain();
  return pred();
}

// A job that runs until `open` is set, and says it started.
ActionWorker::Job gated(std::atomic<bool>& started, std::atomic<bool>& open, std::atomic<int>* applied = nullptr) {
  return [&started, &open, applied]() -> ActionWorker::Apply {
    started = true;
    while (!open) std::this_thread::sleep_for(1ms);
    return [applied] {
      if (applied) ++*applied;
    };
  };
}

TEST(ActionWorker, AFullQueueDropsAndCounts) {
  ActionWorker w(2);
  std::atomic<bool> started{false}, open{false};
  std::atomic<int> applied{0};
  ASSERT_EQ(w.submit("a", "job a", gated(started, open, &applied)), ActionWorker::Submitted::Queued);
  ASSERT_TRUE(drain_until(w, [&] { return started.load(); }, test::scaled(5s)));
  EXPECT_EQ(w.submit("b", "job b", gated(started, open, &applied)), ActionWorker::Submitted::Queued);
  EXPECT_EQ(w.submit("c", "job c", gated(started, open, &applied)), ActionWorker::Submitted::Queued);
  EXPECT_EQ(w.submit("d", "job d", gated(started, open, &applied)), ActionWorker::Submitted::Full);
  ActionWorker::Stats st = w.stats();
  EXPECT_EQ(st.running, "job a");
  EXPECT_EQ(st.queued, 2u);
  EXPECT_EQ(st.dropped, 1u);
  EXPECT_FALSE(w.busy("d"));  // a dropped job holds nothing
  open = true;
  ASSERT_TRUE(drain_until(w, [&] { return applied == 3; }, test::scaled(5s)));
  st = w.stats();
  EXPECT_EQ(st.done, 3u);
  EXPECT_EQ(st.running, "");
  EXPECT_EQ(ActionWorker::to_json(st)["dropped"], 1);
}

TEST(ActionWorker, OneJobPerTargetUntilItsResultIsApplied) {
  ActionWorker w;
  std::atomic<bool> started{false}, open{false};
  std::atomic<int> applied{0};
  ASSERT_EQ(w.submit("unit x.service", "first", gated(started, open, &applied)), ActionWorker::Submitted::Queued);
  EXPECT_TRUE(w.busy("unit x.service"));
  EXPECT_EQ(w.submit("unit x.service", "second", gated(started, open)), ActionWorker::Submitted::Busy);
  EXPECT_EQ(w.stats().busy, 1u);
  // Another target is not held up by it.
  std::atomic<bool> other{false};
  EXPECT_EQ(w.submit("unit y.service", "other", [&]() -> ActionWorker::Apply {
    other = true;
    return {};
  }),
            ActionWorker::Submitted::Queued);
  open = true;
  // Finished but not applied: still busy (the loop has not seen the result).
  const auto end = steady::now() + test::scaled(5s);
  while (w.stats().done < 1 && steady::now() < end) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(w.busy("unit x.service"));
  ASSERT_TRUE(drain_until(w, [&] { return applied == 1 && !w.busy("unit x.service"); }, test::scaled(5s)));
  EXPECT_EQ(w.submit("unit x.service", "third", [] { return ActionWorker::Apply{}; }),
            ActionWorker::Submitted::Queued);
  EXPECT_TRUE(drain_until(w, [&] { return other && !w.busy("unit x.service"); }, test::scaled(5s)));
}

// A result's Apply may queue the target's next step (a service's exit status
// read, then its start): the target is free by the time the Apply runs.
TEST(ActionWorker, AnApplyMaySubmitItsTargetsNextJob) {
  ActionWorker w;
  bool second = false;
  ActionWorker::Submitted next = ActionWorker::Submitted::Stopped;
  ASSERT_EQ(w.submit("service web", "exit status", [&]() -> ActionWorker::Apply {
    return [&] {
      next = w.submit("service web", "start", [&]() -> ActionWorker::Apply { return [&] { second = true; }; });
    };
  }),
            ActionWorker::Submitted::Queued);
  ASSERT_TRUE(drain_until(w, [&] { return second; }, test::scaled(5s)));
  EXPECT_EQ(next, ActionWorker::Submitted::Queued);
  EXPECT_FALSE(w.busy("service web"));
}

TEST(ActionWorker, NothingThrownEscapes) {
  ActionWorker w;
  std::string error;
  ASSERT_EQ(w.submit("t", "criu dump of service web", []() -> ActionWorker::Apply { throw std::runtime_error("boom"); },
                     [&](const std::string& why) { error = why; }),
            ActionWorker::Submitted::Queued);
  ASSERT_TRUE(drain_until(w, [&] { return !error.empty(); }, test::scaled(5s)));
  EXPECT_EQ(error, "criu dump of service web failed: boom");
  EXPECT_EQ(w.stats().failed, 1u);
  // Neither a non-std exception nor one thrown by the result on the loop.
  bool after = false;
  w.submit("t2", "odd", []() -> ActionWorker::Apply { throw 42; });
  w.submit("t3", "bad apply", []() -> ActionWorker::Apply { return [] { throw std::logic_error("in apply"); }; });
  w.submit("t4", "fine", [&]() -> ActionWorker::Apply { return [&] { after = true; }; });
  EXPECT_TRUE(drain_until(w, [&] { return after && !w.busy("t3"); }, test::scaled(5s)));
  EXPECT_EQ(w.stats().failed, 2u);
}

TEST(ActionWorker, ShutdownCancelsTheQueueAndBoundsTheRunningJob) {
  ActionWorker w;
  std::atomic<bool> started{false};
  const std::atomic<bool>& cancel = w.cancel_flag();
  // Like RealCommandRunner: runs until cancelled.
  ASSERT_EQ(w.submit("a", "endless", [&]() -> ActionWorker::Apply {
    started = true;
    while (!cancel) std::this_thread::sleep_for(1ms);
    return {};
  }),
            ActionWorker::Submitted::Queued);
  std::string queued_error;
  w.submit("b", "queued", [] { return ActionWorker::Apply{}; }, [&](const std::string& why) { queued_error = why; });
  ASSERT_TRUE(drain_until(w, [&] { return started.load(); }, test::scaled(5s)));
  const auto t0 = steady::now();
  w.shutdown(200ms);
  const auto took = steady::now() - t0;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, test::scaled(3s));
  EXPECT_TRUE(cancel.load());
  w.drain();
  EXPECT_EQ(queued_error, "queued cancelled: shutdown");
  EXPECT_EQ(w.submit("c", "late", [] { return ActionWorker::Apply{}; }), ActionWorker::Submitted::Stopped);
  w.shutdown();  // idempotent
}

TEST(ActionWorker, ShutdownWaitsForAJobThatEndsWithinTheBound) {
  ActionWorker w;
  std::atomic<bool> started{false}, open{false};
  std::atomic<int> applied{0};
  w.submit("a", "short", gated(started, open, &applied));
  ASSERT_TRUE(drain_until(w, [&] { return started.load(); }, test::scaled(5s)));
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    open = true;
  });
  w.shutdown(test::scaled(10s));
  opener.join();
  EXPECT_FALSE(w.cancel_flag().load());
  w.drain();
  EXPECT_EQ(applied, 1);
}

// A real command (sleep 20) ended by the cancel flag, not its timeout.
TEST(RealCommandRunner, TheCancelFlagEndsARunningCommand) {
  RealCommandRunner r;
  std::atomic<bool> cancel{false};
  r.set_cancel(&cancel);
  std::thread t([&] {
    std::this_thread::sleep_for(200ms);
    cancel = true;
  });
  const auto t0 = steady::now();
  auto rc = r.run({"sleep", "20"}, 60s, nullptr);
  const auto took = steady::now() - t0;
  t.join();
  ASSERT_FALSE(rc);
  EXPECT_EQ(rc.error().code, ECANCELED) << rc.error().message;
  EXPECT_LT(took, test::scaled(5s));
}

int g_pings = 0;
void count_ping() { ++g_pings; }

// A wait on the worker's thread must not ping the watchdog for the loop.
TEST(Keepalive, OnlyTheInstallingThreadPings) {
  g_pings = 0;
  set_keepalive(&count_ping);
  keepalive();
  EXPECT_EQ(g_pings, 1);
  std::thread([] { keepalive(); }).join();
  EXPECT_EQ(g_pings, 1);
  set_keepalive(nullptr);
  keepalive();
  EXPECT_EQ(g_pings, 1);
}

// A unit restart through the worker: queued at once, systemctl run off the loop.
TEST(ActionWorker, AUnitRestartIsQueuedAndRunsOffTheLoop) {
  test::FakeTree tree;
  tree.mkdir("run/systemd/system");
  test::FakeRunner runner;
  SystemdControl systemd(runner, tree.path("run/systemd/system"));
  ActionWorker w;
  RealActuatorDeps deps;
  deps.systemd = &systemd;
  deps.proc_root = tree.path("proc");
  deps.worker = &w;
  RealActuator actuator(deps);
  Target t;
  t.key = ProcKey{4242, 7};
  t.comm = "foo";
  t.unit = "foo.service";
  ActionOutcome o = actuator.restart(t, false);
  EXPECT_EQ(o.result, ActionResult::Ok) << o.detail;
  EXPECT_EQ(o.detail, "systemctl restart foo.service: queued, runs off the sampling loop");
  EXPECT_EQ(actuator.restart(t, false).result, ActionResult::Skipped);  // one call per unit at a time
  ASSERT_TRUE(drain_until(w, [&] { return !w.busy("unit foo.service"); }, test::scaled(5s)));
  w.shutdown();
  ASSERT_EQ(runner.calls.size(), 1u);
  EXPECT_EQ(runner.calls[0], (std::vector<std::string>{"systemctl", "restart", "--no-block", "--", "foo.service"}));
}

}  // namespace
}  // namespace fp
