#include "alerting.h"

#include <cstdio>
#include <fstream>

#include <httplib.h>

#include "e2e_fixture.h"

namespace fp::e2e {
using namespace std::chrono_literals;

// ---- WebhookReceiver ----

WebhookReceiver::WebhookReceiver() : server_(std::make_unique<httplib::Server>()) {
  server_->Post("/alerts", [this](const httplib::Request& req, httplib::Response& res) {
    auto now = std::chrono::steady_clock::now();
    auto j = nlohmann::json::parse(req.body, nullptr, false);
    std::lock_guard lock(mu_);
    ++notifications_;
    if (!j.is_discarded() && j.contains("alerts") && j["alerts"].is_array())
      for (const auto& a : j["alerts"]) alerts_.push_back({a, now});
    res.status = 200;
  });
  int port = server_->bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "WebhookReceiver: cannot bind 127.0.0.1\n");
    return;
  }
  port_ = static_cast<uint16_t>(port);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  wait_until([&] { return server_->is_running(); }, 10s);
}

WebhookReceiver::~WebhookReceiver() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::vector<ReceivedAlert> WebhookReceiver::alerts() const {
  std::lock_guard lock(mu_);
  return alerts_;
}

size_t WebhookReceiver::notifications() const {
  std::lock_guard lock(mu_);
  return notifications_;
}

std::optional<ReceivedAlert> WebhookReceiver::wait_alert(const std::function<bool(const nlohmann::json&)>& pred,
                                                         std::chrono::milliseconds deadline) const {
  std::optional<ReceivedAlert> found;
  wait_for(
      [&] {
        for (const auto& a : alerts())
          if (pred(a.alert)) {
            found = a;
            return true;
          }
        return false;
      },
      deadline);
  return found;
}

// ---- PrivateAlertmanager ----

PrivateAlertmanager::PrivateAlertmanager(const std::string& webhook_url, std::chrono::milliseconds ready_deadline)
    : PrivateHttpService("alertmanager") {
  std::string conf = dir() + "/alertmanager.yml";
  // group_by '...': every alert its own group, so each one is notified by
  // itself; group_wait 0s: at once; group_interval 1s: a change (its
  // resolution) a second after the last notification at the most.
  std::ofstream(conf) << "global:\n"
                         "  resolve_timeout: 10s\n"
                         "route:\n"
                         "  receiver: webhook\n"
                         "  group_by: ['...']\n"
                         "  group_wait: 0s\n"
                         "  group_interval: 1s\n"
                         "  repeat_interval: 1h\n"
                         "receivers:\n"
                         "  - name: webhook\n"
                         "    webhook_configs:\n"
                         "      - url: '"
                      << webhook_url << "'\n        send_resolved: true\n";
  start({"/usr/bin/prometheus-alertmanager", "--config.file=" + conf, "--storage.path=" + dir() + "/data",
         "--web.listen-address=" + address(), "--cluster.listen-address=", "--log.level=info"},
        ready_deadline);
}

}  // namespace fp::e2e
