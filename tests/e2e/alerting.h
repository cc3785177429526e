// The end of the fleet path, real and private to a test: Debian's
// prometheus-alertmanager and the webhook receiver it notifies (a small
// cpp-httplib server in the test process that keeps every alert it gets).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "services.h"

namespace httplib {
class Server;
}

namespace fp::e2e {

// One alert out of an Alertmanager webhook notification ({"alerts": [...]}),
// with the time it arrived.
struct ReceivedAlert {
  nlohmann::json alert;  // {"status": "firing"|"resolved", "labels": {...}, "annotations": {...}, ...}
  std::chrono::steady_clock::time_point at;
};

// POST /alerts on 127.0.0.1, a free port, served on its own thread.
class WebhookReceiver {
 public:
  WebhookReceiver();
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  bool ok() const { return port_ != 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/alerts"; }
  std::vector<ReceivedAlert> alerts() const;
  size_t notifications() const;
  // Polls until an alert satisfies `pred` (a deadline scaled as the e2e tests' are).
  std::optional<ReceivedAlert> wait_alert(const std::function<bool(const nlohmann::json&)>& pred,
                                          std::chrono::milliseconds deadline) const;

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<ReceivedAlert> alerts_;
  size_t notifications_ = 0;
};

// /usr/bin/prometheus-alertmanager routing every alert, one group per alert,
// to a webhook at once (group_wait 0s, group_interval 1s, resolved
// notifications on); API on 127.0.0.1 (address()), clustering off (it would
// listen on every address), storage in its temp dir. Returns once ready
// (ok() false otherwise).
class PrivateAlertmanager : public PrivateHttpService {
 public:
  explicit PrivateAlertmanager(const std::string& webhook_url,
                               std::chrono::milliseconds ready_deadline = std::chrono::seconds(60));
  std::optional<nlohmann::json> alerts() const { return get_json("/api/v2/alerts"); }  // what it holds now
};

}  // namespace fp::e2e
