#include "act/action_worker.h"

#include <exception>

#include <spdlog/spdlog.h>

namespace fp {

ActionWorker::ActionWorker(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
  thread_ = std::thread([this] { run(); });
}

ActionWorker::~ActionWorker() { shutdown(); }

ActionWorker::Submitted ActionWorker::submit(const std::string& target, std::string what, Job job, OnError on_error) {
  std::lock_guard<std::mutex> g(mu_);
  if (stopping_) return Submitted::Stopped;
  if (targets_.count(target) != 0) {
    ++counts_.busy;
    return Submitted::Busy;
  }
  if (queue_.size() >= capacity_) {
    ++counts_.dropped;
    spdlog::warn("action worker: queue full ({} jobs); dropped {}", queue_.size(), what);
    return Submitted::Full;
  }
  targets_.insert(target);
  queue_.push_back(Item{target, std::move(what), std::move(job), std::move(on_error)});
  cv_.notify_one();
  return Submitted::Queued;
}

bool ActionWorker::busy(const std::string& target) const {
  std::lock_guard<std::mutex> g(mu_);
  return targets_.count(target) != 0;
}

void ActionWorker::run() {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      item = std::move(queue_.front());
      queue_.pop_front();
      running_ = item.what;
      running_since_ = std::chrono::steady_clock::now();
    }
    Apply apply;
    std::string error;
    try {
      apply = item.job();
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    if (!error.empty()) {
      spdlog::error("action worker: {} threw: {}", item.what, error);
      apply = [on_error = std::move(item.on_error), msg = item.what + " failed: " + error] {
        if (on_error) on_error(msg);
      };
    }
    std::lock_guard<std::mutex> g(mu_);
    running_.clear();
    ++counts_.done;
    if (!error.empty()) ++counts_.failed;
    results_.emplace_back(item.target, std::move(apply));
    idle_cv_.notify_all();
  }
}

void ActionWorker::drain() {
  std::deque<std::pair<std::string, Apply>> ready;
  {
    std::lock_guard<std::mutex> g(mu_);
    ready.swap(results_);
  }
  for (auto& [target, apply] : ready) {
    {
      // Free before the Apply runs: it may submit the target's next step (an
      // exit status read that ends in a start of the same service).
      std::lock_guard<std::mutex> g(mu_);
      targets_.erase(target);
    }
    try {
      if (apply) apply();
    } catch (const std::exception& e) {
      spdlog::error("action worker: applying the result for {} threw: {}", target, e.what());
    } catch (...) {
      spdlog::error("action worker: applying the result for {} threw", target);
    }
  }
}

void ActionWorker::shutdown(std::chrono::milliseconds bound) {
  std::unique_lock<std::mutex> g(mu_);
  if (!thread_.joinable()) return;
  stopping_ = true;
  for (auto& item : queue_) {
    ++counts_.failed;
    results_.emplace_back(item.target, [on_error = std::move(item.on_error), msg = item.what + " cancelled: shutdown"] {
      if (on_error) on_error(msg);
    });
  }
  queue_.clear();
  cv_.notify_all();
  if (!idle_cv_.wait_for(g, bound, [&] { return running_.empty(); })) {
    spdlog::warn("action worker: {} still running after {} ms at shutdown; cancelling it", running_, bound.count());
    cancel_ = true;
  }
  g.unlock();
  thread_.join();
}

ActionWorker::Stats ActionWorker::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  Stats s = counts_;
  s.running = running_;
  if (!running_.empty())
    s.running_ms = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                   running_since_)
                                .count());
  s.queued = queue_.size();
  return s;
}

nlohmann::json ActionWorker::to_json(const Stats& s) {
  return {{"running", s.running}, {"running_ms", s.running_ms}, {"queued", s.queued}, {"done", s.done},
          {"dropped", s.dropped}, {"busy", s.busy},             {"failed", s.failed}};
}

}  // namespace fp
