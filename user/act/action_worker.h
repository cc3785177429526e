// Long actions off the sampling loop: a `criu dump` (up to a minute), a
// systemctl or systemd-run call (up to 30 s) run on one worker thread,
// so the loop keeps sampling, detecting and pinging the watchdog meanwhile.
//
// One thread and a bounded FIFO, not a child + state machine per action: the
// helpers already have a blocking runner with timeouts (RealCommandRunner,
// CriuBackend), and what they touch besides the command (the image
// directory's rotation) is theirs alone. A job returns what to do with its
// result; that runs on the loop, in drain(), so the daemon's state is still
// only ever changed by the loop's thread.
//
// Per target (a service, a unit): one job at a time, from submit until its
// result was applied. A full queue drops the job and counts it. Nothing a job
// throws leaves the worker: it becomes the job's on_error, on the loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace fp {

class ActionWorker {
 public:
  using Apply = std::function<void()>;                       // runs on the loop
  using Job = std::function<Apply()>;                        // runs on the worker
  using OnError = std::function<void(const std::string&)>;   // on the loop: the job threw or was cancelled
  enum class Submitted { Queued, Busy, Full, Stopped };

  struct Stats {
    std::string running;      // "criu dump of service web", "" when idle
    uint64_t running_ms = 0;  // for how long
    size_t queued = 0;
    uint64_t done = 0;
    uint64_t dropped = 0;     // refused: the queue was full
    uint64_t busy = 0;        // refused: a job for the same target was under way
    uint64_t failed = 0;      // threw (or were cancelled at shutdown)
  };

  explicit ActionWorker(size_t capacity = 16);
  ~ActionWorker();  // shutdown() with its default bound
  ActionWorker(const ActionWorker&) = delete;
  ActionWorker& operator=(const ActionWorker&) = delete;

  // `target` serialises ("service web", "unit foo.service"); `what` names the
  // job in logs and status. Busy while that target has a job queued, running
  // or with its result not applied yet; the result's own Apply may submit the
  // target's next job.
  Submitted submit(const std::string& target, std::string what, Job job, OnError on_error = {});
  bool busy(const std::string& target) const;
  // Applies the results of finished jobs (and the errors of failed ones), in
  // the order they finished. Call from the loop, every tick. What an Apply
  // throws is logged and costs that result only.
  void drain();

  // Set once shutdown stops waiting: the helper runners kill their command
  // when they see it (RealCommandRunner::set_cancel).
  const std::atomic<bool>& cancel_flag() const { return cancel_; }

  // Refuses new jobs, drops the queued ones (their on_error says so), waits
  // up to `bound` for the running one, then raises the cancel flag and joins.
  // Then drain() applies what came back. Idempotent.
  void shutdown(std::chrono::milliseconds bound = std::chrono::seconds(10));

  Stats stats() const;
  static nlohmann::json to_json(const Stats& s);

 private:
  struct Item {
    std::string target, what;
    Job job;
    OnError on_error;
  };
  void run();
  void finish(const std::string& target, Apply apply);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // the worker waits for work
  std::condition_variable idle_cv_;  // shutdown waits for the running job
  std::deque<Item> queue_;
  std::set<std::string> targets_;    // queued, running or unapplied
  std::deque<std::pair<std::string, Apply>> results_;
  std::string running_;
  std::chrono::steady_clock::time_point running_since_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};
  Stats counts_;
  std::thread thread_;
};

}  // namespace fp
