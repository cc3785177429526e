// The /metrics endpoint: cpp-httplib on its own thread.
#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "alert/metrics.h"
#include "util/guard.h"

namespace fp {

Result<ListenAddress> parse_listen_address(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error{EINVAL, "\"" + std::string(text) + "\": " + why + " (expected HOST:PORT, e.g. 127.0.0.1:9464)"};
  };
  ListenAddress a;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("IPv6 needs [ADDR]:PORT");
    a.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    if (text.find(':') != colon) return bad("IPv6 addresses need [brackets]");
    a.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (a.host.empty()) return bad("no host (use 0.0.0.0 to listen on every address)");
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535)
    return bad("bad port \"" + std::string(port_text) + "\"");
  a.port = static_cast<uint16_t>(port);
  return a;
}

MetricsServer::MetricsServer(size_t top_n) : top_n_(top_n) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::publish(std::shared_ptr<const DaemonView> view) {
  std::lock_guard lock(view_mu_);
  view_ = std::move(view);
}

Result<void> MetricsServer::start(const std::string& listen) {
  if (running()) return Error{EALREADY, "metrics server already listening on port " + std::to_string(port_)};
  auto addr = parse_listen_address(listen);
  if (!addr) return Error{EINVAL, "metrics_listen " + addr.error().message};

  auto server = std::make_unique<httplib::Server>();
  // Two workers: Prometheus scrapes one at a time; a second keeps a stuck
  // client from blocking it. Short timeouts for the same reason.
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_read_timeout(std::chrono::seconds(5));
  server->set_write_timeout(std::chrono::seconds(5));
  server->set_keep_alive_max_count(100);
  server->set_payload_max_length(64 * 1024);
  // httplib's default sets SO_REUSEPORT, which would let a second daemon bind
  // the same port silently. SO_REUSEADDR only; and not inherited by the
  // services the daemon starts.
  server->set_socket_options([](int fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
  });
  server->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    // httplib would answer an exception with a 500 carrying its text in a
    // header; we log it and say nothing about it.
    if (!guarded("metrics scrape", [&] { serve(res); })) {
      res.status = 500;
      res.set_content("faultprobed: internal error, see its log\n", "text/plain; charset=utf-8");
    }
  });
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("faultprobed serves GET /metrics only\n", "text/plain; charset=utf-8");
  });

  errno = 0;
  int port = addr->port == 0 ? server->bind_to_any_port(addr->host) : (server->bind_to_port(addr->host, addr->port)
                                                                            ? addr->port
                                                                            : -1);
  if (port <= 0) {
    int err = errno ? errno : EADDRNOTAVAIL;
    return Error::from_errno(err, "metrics_listen " + listen + ": cannot listen");
  }
  port_ = static_cast<uint16_t>(port);
  server_ = std::move(server);
  httplib::Server* s = server_.get();
  listen_done_ = false;
  thread_ = std::thread([this, s] {
    guarded("metrics: the accept loop", [&] {
      if (!s->listen_after_bind()) spdlog::warn("metrics: the accept loop on port {} stopped with an error", port_);
    });
    listen_done_ = true;
  });
  // stop() only works once the accept loop runs: wait for it, so a stop()
  // right after start() cannot leave the thread listening forever.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!s->is_running() && !listen_done_ && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  spdlog::info("metrics: serving GET /metrics on {} port {}", addr->host, port_);
  return {};
}

void MetricsServer::serve(httplib::Response& res) {
  std::shared_ptr<const DaemonView> view;
  {
    std::lock_guard lock(view_mu_);
    view = view_;
  }
  ++scrapes_;
  if (!view) {
    res.status = 503;
    res.set_content("faultprobed: no data yet, the first sample is under way\n", "text/plain; charset=utf-8");
    return;
  }
  res.set_content(render_metrics(*view, top_n_.load()), "text/plain; version=0.0.4; charset=utf-8");
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() is a no-op until the accept loop runs: wait for it to
  // start (or to have ended on its own).
  while (!server_->is_running() && !listen_done_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server_->stop();
  thread_.join();
  server_.reset();
}

}  // namespace fp
