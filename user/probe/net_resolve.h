// The socket-owner resolver (bpf/net.bpf.c, net_resolve): when the daemon
// walks every process's open files for the owners of sockets that events
// waited for (net_pending), and what the walks did. The owner of a socket
// is learned where the owner runs (connect, a TCP read) at no cost to
// anything else; a UDP socket, or an accepted one before its first read,
// is found by this walk instead of by a hook on every sendmsg/recvmsg of
// every socket. Probe::resolve_net_owners (loader/net_resolve.cpp) runs it.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fp {

struct NetResolveStatus {
  bool walk = false;      // the kernel has the walk (iter/task_file, bpf_sock_from_file)
  std::string reason;     // why not, when it has not
  uint64_t walks = 0;     // walks run (each followed by a sweep)
  uint64_t found = 0;     // waiting sockets found open in a process
  uint64_t charged = 0;   // of those, charged to it
  uint64_t events = 0;    // events charged by walks
  // Waiting sockets no walk found (closed, or the kernel's own): their
  // retransmits, resets and overflows are counted unowned (drops are not:
  // drops on sockets nobody owns are not the unowned counter's business).
  uint64_t unresolved_sockets = 0;
  uint64_t unresolved_events = 0;
  uint64_t unresolved_drops = 0;
  double last_ms = 0, max_ms = 0;  // a walk and its sweep
  uint64_t last_at_ns = 0;         // CLOCK_MONOTONIC of the last walk's start (0: none yet)
  uint64_t interval_ns = 0;        // the pacer's interval now
};

nlohmann::json net_resolve_status_json(const NetResolveStatus& s);

// When to walk: as soon as events wait (the probe's count of them moved
// since the last walk began), but not within `interval` of the last walk;
// the interval doubles (up to `max`) after each walk that charged nobody
// (sockets nobody has open, such as the kernel's own, keep events waiting
// and would otherwise make every interval a walk) and returns to `min` at
// the first walk that charges someone.
class NetResolvePacer {
 public:
  static constexpr uint64_t kMinIntervalNs = 500'000'000ull;
  static constexpr uint64_t kMaxIntervalNs = 16'000'000'000ull;
  explicit NetResolvePacer(uint64_t min_ns = kMinIntervalNs, uint64_t max_ns = kMaxIntervalNs)
      : min_ns_(min_ns), max_ns_(max_ns < min_ns ? min_ns : max_ns), interval_ns_(min_ns) {}

  bool due(uint64_t pending_events, uint64_t now_ns) const {
    if (pending_events == seen_) return false;
    return !walked_ || now_ns - last_ns_ >= interval_ns_;
  }
  // A walk began at `now_ns` with the probe's count at `pending_events`;
  // `charged`: it charged at least one socket to its owner.
  void walked(uint64_t pending_events, uint64_t now_ns, bool charged) {
    seen_ = pending_events;
    last_ns_ = now_ns;
    walked_ = true;
    interval_ns_ = charged ? min_ns_ : (interval_ns_ > max_ns_ / 2 ? max_ns_ : interval_ns_ * 2);
  }
  uint64_t interval_ns() const { return interval_ns_; }

 private:
  uint64_t min_ns_, max_ns_, interval_ns_;
  uint64_t seen_ = 0, last_ns_ = 0;
  bool walked_ = false;
};

}  // namespace fp
