// The board that hands what the daemon shows of itself -- the status JSON
// (`faultprobe status`) and the per-process view (`faultprobe top`,
// /metrics) -- from the sampling thread, which builds them
// (daemon/status.cpp), to the socket server's thread, which serves them.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "report/view.h"

namespace fp {

// The view's rows (one per process) are built only while a client wants
// them (a `view` request in the last kWantedNs, or a metrics server), and
// serialized on the requesting thread: at 10,000 processes rows and JSON
// cost tens of ms and MB, which the sampling thread should not pay for
// nobody.
//
// The status is built on request too: a client's request wakes the sampling
// thread (wake_fd()), which builds it between ticks; at 10,000 processes a
// status costs ~1.5 ms (/proc/self/status, mallinfo2, the JSON), which was
// paid once a second whether anybody asked or not.
class StatusBoard {
 public:
  StatusBoard();
  ~StatusBoard();
  StatusBoard(const StatusBoard&) = delete;
  StatusBoard& operator=(const StatusBoard&) = delete;

  // A client that asked for the view within this time keeps the rows coming
  // (`faultprobe top` asks every second).
  static constexpr uint64_t kWantedNs = 5'000'000'000ull;
  // A view older than this is rebuilt for a request rather than served.
  static constexpr uint64_t kFreshNs = 1'500'000'000ull;

  // ---- the sampling thread ----
  // Whether a client asked for the view in the last kWantedNs.
  bool wanted(uint64_t now) const;
  // Whether a status request waits for a status built after it.
  bool status_asked() const;
  // Readable while a client waits (for a status, or for a first view): the
  // sampling thread polls it with the ring buffer and calls clear_wake().
  int wake_fd() const { return wake_fd_; }
  void clear_wake();
  // Whether the newest view is too old to serve.
  bool stale(uint64_t now) const { return now - std::min(now, built_ns_) >= kFreshNs; }
  // Publishes a new status and, when `view` is not null, a new view with rows.
  // `now`: when the status was built (at or after the requests it answers).
  void post(nlohmann::json status, std::shared_ptr<const DaemonView> view, uint64_t now);

  // ---- the socket server's thread ----
  // The newest view as JSON ("{}" before the first). Marks the view wanted;
  // the first request (or one after a pause) waits for the sampling
  // thread's next tick, at most a second.
  std::string view_json();
  // A status built after this call (waits for the sampling thread, at most
  // kStatusWaitNs; then the newest one, "{}" before the first).
  nlohmann::json status();
  static constexpr uint64_t kStatusWaitNs = 2'000'000'000ull;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const DaemonView> view_;  // newest view with rows (null: none yet)
  std::string view_json_;                   // view_ serialized, "" until first asked
  uint64_t gen_ = 0, json_gen_ = 0;         // views posted; the one view_json_ was made from
  uint64_t built_ns_ = 0;                   // when view_ was posted (monotonic; written by the sampling thread)
  std::atomic<uint64_t> wanted_ns_{0};      // last request (monotonic), 0: never
  std::atomic<uint64_t> status_asked_ns_{0};  // newest status request (monotonic), 0: never
  std::atomic<uint64_t> status_built_ns_{0};  // when the newest status was built
  int wake_fd_ = -1;                          // eventfd: a client waits
  void wake();
  nlohmann::json status_ = nlohmann::json::object();
};

}  // namespace fp
