// Prometheus: the daemon's view rendered in the text exposition format 0.0.4,
// served on GET /metrics (off by default; `metrics_listen` turns it on).
// Per-process series are bounded: the union of the top N processes by each
// resource, so a host with thousands of processes exports at most ~6N of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "report/view.h"
#include "util/result.h"

namespace httplib {
class Server;
struct Response;
}

namespace fp {

// The whole exposition for one view. `top_n` bounds the per-process series
// (0 = no per-process series). Every family has HELP and TYPE lines; fault
// families carry a series (0) for every fault class so rates work from the
// first fault on.
std::string render_metrics(const DaemonView& v, size_t top_n);

// A label value: escape_text() (util/text.h: control bytes and invalid UTF-8
// as \xHH), then the text format's escapes ('\\', '"').
std::string prom_escape_label(std::string_view v);

struct ListenAddress {
  std::string host;  // IPv6 without brackets
  uint16_t port = 0;
};
// "127.0.0.1:9464", "[::1]:9464"; port 0 picks a free port (tests).
Result<ListenAddress> parse_listen_address(std::string_view text);

class MetricsServer {
 public:
  explicit MetricsServer(size_t top_n = 20);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds now (a taken port or bad address is returned here, with the
  // reason), then serves on its own thread with a small fixed pool.
  Result<void> start(const std::string& listen);
  // The newest view; scrapes render from it. Thread-safe. Before the first
  // one a scrape gets 503.
  void publish(std::shared_ptr<const DaemonView> view);
  void set_top_n(size_t n) { top_n_.store(n); }
  void stop();
  bool running() const { return thread_.joinable(); }
  uint16_t port() const { return port_; }
  uint64_t scrapes() const { return scrapes_.load(); }

 private:
  void serve(httplib::Response& res);  // GET /metrics

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<size_t> top_n_;
  std::atomic<uint64_t> scrapes_{0};
  std::atomic<bool> listen_done_{false};
  mutable std::mutex view_mu_;
  std::shared_ptr<const DaemonView> view_;
};

}  // namespace fp
