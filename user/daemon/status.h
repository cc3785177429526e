// What the daemon shows of itself: the status JSON (`faultprobe status`,
// rebuilt once a second) and the per-process view (`faultprobe top`,
// /metrics), and the board that hands both from the sampling thread to the
// socket server's. Service builds them: Service::build_status and
// Service::rebuild_view live in status.cpp, beside the board.
#pragma once

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
class StatusBoard {
 public:
  // A client that asked for the view within this time keeps the rows coming
  // (`faultprobe top` asks every second).
  static constexpr uint64_t kWantedNs = 5'000'000'000ull;
  // A view older than this is rebuilt for a request rather than served.
  static constexpr uint64_t kFreshNs = 1'500'000'000ull;

  // ---- the sampling thread ----
  // Whether a client asked for the view in the last kWantedNs.
  bool wanted(uint64_t now) const;
  // Whether the newest view is too old to serve.
  bool stale(uint64_t now) const { return now - built_ns_ >= kFreshNs; }
  // Publishes a new status and, when `view` is not null, a new view with rows.
  void post(nlohmann::json status, std::shared_ptr<const DaemonView> view, uint64_t now);

  // ---- the socket server's thread ----
  // The newest view as JSON ("{}" before the first). Marks the view wanted;
  // the first request (or one after a pause) waits for the sampling
  // thread's next tick, at most a second.
  std::string view_json();
  nlohmann::json status() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const DaemonView> view_;  // newest view with rows (null: none yet)
  std::string view_json_;                   // view_ serialized, "" until first asked
  uint64_t gen_ = 0, json_gen_ = 0;         // views posted; the one view_json_ was made from
  uint64_t built_ns_ = 0;                   // when view_ was posted (monotonic; written by the sampling thread)
  std::atomic<uint64_t> wanted_ns_{0};      // last request (monotonic), 0: never
  nlohmann::json status_ = nlohmann::json::object();
};

}  // namespace fp
