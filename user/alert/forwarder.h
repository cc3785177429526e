// Forwarding alert lines as RFC 5424 to a collector over UDP (one datagram per
// line) or TCP (octet-counting framing, RFC 6587 3.4.1).
//
// send() only formats and queues: a worker thread does the network, so an
// unreachable or slow collector never blocks the daemon. What cannot be
// delivered is dropped and counted (failures()), never retried forever.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "alert/syslog.h"
#include "util/result.h"

namespace fp {

struct ForwardTarget {
  enum class Proto { Udp, Tcp };
  Proto proto = Proto::Udp;
  std::string host;  // name or address; IPv6 without brackets
  uint16_t port = 514;
  std::string url() const;  // "udp://host:port"
};

// "udp://host:port", "tcp://host:port", "tcp://[::1]:6514"; the port defaults to 514.
Result<ForwardTarget> parse_forward_target(std::string_view url);

class Rfc5424Forwarder : public SyslogSink {
 public:
  struct Options {
    size_t queue_max = 256;  // lines waiting for the network; the oldest is dropped beyond
    std::chrono::milliseconds connect_timeout{1000};
    std::chrono::milliseconds send_timeout{1000};  // a collector this slow counts as down
    std::chrono::milliseconds backoff_initial{250};
    std::chrono::milliseconds backoff_max{30000};
  };

  explicit Rfc5424Forwarder(ForwardTarget target) : Rfc5424Forwarder(std::move(target), Options{}) {}
  Rfc5424Forwarder(ForwardTarget target, Options opts);
  ~Rfc5424Forwarder() override;  // stops the worker; lines still queued count as failures
  Rfc5424Forwarder(const Rfc5424Forwarder&) = delete;
  Rfc5424Forwarder& operator=(const Rfc5424Forwarder&) = delete;

  // Formats the line now (its timestamp is the event's) and queues it. While
  // the collector is known to be down (a TCP connect failed and the retry is
  // not due) the line is counted as failed at once instead of queued.
  void send(const AlertLine& line) override;
  uint64_t failures() const override { return failures_.load(); }
  std::string describe() const override { return "forward " + target_.url(); }

  uint64_t forwarded() const { return forwarded_.load(); }  // lines written to the socket
  uint64_t connect_failures() const { return connect_failures_.load(); }
  // Waits until every queued line was written or dropped; false on timeout.
  bool flush(std::chrono::milliseconds timeout);

  // The RFC 5424 line for `line` as this forwarder sends it (no framing).
  std::string format(const AlertLine& line, uint64_t realtime_ns) const;

 private:
  void run();
  bool open_socket(std::string& why);  // resolves and connects; false with a reason
  void close_socket();
  bool write_line(const std::string& line, std::string& why);
  bool peer_closed() const;

  const ForwardTarget target_;
  const Options opts_;
  const std::string hostname_;
  const int procid_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // work for the worker
  std::condition_variable idle_cv_;   // the worker went idle (flush)
  std::deque<std::string> queue_;
  bool stop_ = false;
  bool busy_ = false;                 // the worker holds a line
  bool down_ = false;                 // last TCP connect failed; retry at retry_at_
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};

  int fd_ = -1;  // worker thread only
  std::atomic<uint64_t> failures_{0}, forwarded_{0}, connect_failures_{0};
  std::thread worker_;
};

}  // namespace fp
