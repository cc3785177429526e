#include "alerting.h"

#include <sys/socket.h>

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

PrivateAlertmanager::PrivateAlertmanager(const std::string& webhook_url, std::chrono::milliseconds ready_deadline) {
  dir_ = make_temp_dir("fp_alertmanager");
  port_ = free_port(SOCK_STREAM);
  std::string conf = dir_ + "/alertmanager.yml";
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
  proc_ = ChildProcess({"/usr/bin/prometheus-alertmanager", "--config.file=" + conf, "--storage.path=" + dir_ + "/data",
                        "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--cluster.listen-address=",
                        "--log.level=info"},
                       dir_ + "/alertmanager.log");
  ok_ = wait_ready(proc_, port_, ready_deadline);
  if (!ok_) std::fprintf(stderr, "PrivateAlertmanager did not get ready:\n%s\n", log().c_str());
}

PrivateAlertmanager::~PrivateAlertmanager() {
  proc_.stop();
  remove_temp_dir(dir_);
}

std::string PrivateAlertmanager::log() const { return slurp(dir_ + "/alertmanager.log"); }

std::optional<nlohmann::json> PrivateAlertmanager::alerts() const {
  httplib::Client cli("127.0.0.1", port_);
  cli.set_connection_timeout(2s);
  cli.set_read_timeout(10s);
  auto res = cli.Get("/api/v2/alerts");
  if (!res) return std::nullopt;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

}  // namespace fp::e2e
