// The /metrics endpoint: a small HTTP/1.1 server on its own thread.
//
// Not cpp-httplib: Debian's build of it links OpenSSL, zlib and brotli into
// the daemon, 3.5 MB of its RSS for an endpoint that is off by default and
// serves one GET. One thread multiplexes a few connections with poll(), so
// a stuck client cannot block a scrape; every request gets one response and
// the connection is closed (Prometheus reconnects per scrape happily).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "alert/metrics.h"

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

namespace {

constexpr size_t kMaxRequestBytes = 64 * 1024;  // headers and body
constexpr size_t kMaxClients = 8;
constexpr auto kClientTimeout = std::chrono::seconds(5);

struct Client {
  int fd = -1;
  std::string in, out;
  size_t sent = 0;
  bool responding = false;
  std::chrono::steady_clock::time_point deadline;
};

std::string response(int code, const char* reason, const std::string& type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// The request's Content-Length, 0 without one, SIZE_MAX if unreadable.
size_t content_length(std::string_view headers) {
  size_t pos = 0;
  while ((pos = headers.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    std::string_view line = headers.substr(pos, headers.find("\r\n", pos) - pos);
    constexpr std::string_view kKey = "content-length:";
    if (line.size() < kKey.size()) continue;
    bool match = true;
    for (size_t i = 0; i < kKey.size() && match; i++)
      match = char(std::tolower(static_cast<unsigned char>(line[i]))) == kKey[i];
    if (!match) continue;
    std::string_view v = line.substr(kKey.size());
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    size_t n = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    return ec == std::errc() && p != v.data() ? n : SIZE_MAX;
  }
  return 0;
}

}  // namespace

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

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(addr->port);
  if (int rc = getaddrinfo(addr->host.c_str(), port_text.c_str(), &hints, &res); rc != 0)
    return Error{EADDRNOTAVAIL, "metrics_listen " + listen + ": cannot listen: " + gai_strerror(rc)};
  int fd = -1, err = EADDRNOTAVAIL;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // SO_REUSEADDR only: SO_REUSEPORT would let a second daemon bind the same port silently.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 16) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return Error::from_errno(err, "metrics_listen " + listen + ": cannot listen");
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    err = errno;
    close(fd);
    return Error::from_errno(err, "metrics: pipe");
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { serve(); });
  spdlog::info("metrics: serving GET /metrics on {} port {}", addr->host, port_);
  return {};
}

// The answer to one complete request (headers in `head`).
std::string MetricsServer::answer(std::string_view head) {
  std::string_view line = head.substr(0, head.find("\r\n"));
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 <= sp1)
    return response(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n");
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  target = target.substr(0, target.find('?'));
  if ((method != "GET" && method != "HEAD") || target != "/metrics")
    return response(404, "Not Found", "text/plain; charset=utf-8", "faultprobed serves GET /metrics only\n");
  std::shared_ptr<const DaemonView> view;
  {
    std::lock_guard lock(view_mu_);
    view = view_;
  }
  ++scrapes_;
  std::string r = view ? response(200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                                  render_metrics(*view, top_n_.load()))
                       : response(503, "Service Unavailable", "text/plain; charset=utf-8",
                                  "faultprobed: no data yet, the first sample is under way\n");
  if (method == "HEAD") r.resize(r.find("\r\n\r\n") + 4);
  return r;
}

void MetricsServer::serve() {
  std::vector<Client> clients;
  std::vector<pollfd> pfds;
  char buf[16384];
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    // Drop clients past their deadline (a stuck or slow one).
    std::erase_if(clients, [&](Client& c) {
      if (now < c.deadline) return false;
      close(c.fd);
      return true;
    });
    pfds.clear();
    pfds.push_back({wake_[0], POLLIN, 0});
    pfds.push_back({listen_fd_, short(clients.size() < kMaxClients ? POLLIN : 0), 0});
    int timeout_ms = -1;
    for (const auto& c : clients) {
      pfds.push_back({c.fd, short(c.responding ? POLLOUT : POLLIN), 0});
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count() + 1;
      timeout_ms = timeout_ms < 0 ? int(left) : std::min(timeout_ms, int(left));
    }
    if (poll(pfds.data(), pfds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      spdlog::warn("metrics: poll failed: {}; the endpoint on port {} stops", std::strerror(errno), port_);
      break;
    }
    if (pfds[0].revents) break;  // stop()
    // Clients first (their pollfds follow the two fixed ones, in order).
    for (size_t i = 0; i < clients.size(); i++) {
      Client& c = clients[i];
      short ev = pfds[i + 2].revents;
      if (!ev) continue;
      bool done = false;
      if (!c.responding) {
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          done = n == 0 || (errno != EAGAIN && errno != EINTR);
        } else {
          c.in.append(buf, size_t(n));
          size_t end = c.in.find("\r\n\r\n");
          if (end != std::string::npos) {
            size_t body = content_length(std::string_view(c.in).substr(0, end));
            if (body > kMaxRequestBytes) {
              c.out = response(413, "Payload Too Large", "text/plain; charset=utf-8", "request too large\n");
              c.responding = true;
            } else if (c.in.size() >= end + 4 + body) {  // the body is read, so closing sends no RST
              c.out = answer(std::string_view(c.in).substr(0, end));
              c.responding = true;
            }
          } else if (c.in.size() > kMaxRequestBytes) {
            c.out = response(431, "Request Header Fields Too Large", "text/plain; charset=utf-8", "too large\n");
            c.responding = true;
          }
        }
      } else {
        ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += size_t(n);
        done = (n < 0 && errno != EAGAIN && errno != EINTR) || c.sent == c.out.size();
      }
      if (done) {
        close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(clients, [](const Client& c) { return c.fd < 0; });
    if (pfds[1].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        Client c;
        c.fd = fd;
        c.deadline = std::chrono::steady_clock::now() + kClientTimeout;
        clients.push_back(std::move(c));
      }
    }
  }
  for (auto& c : clients) close(c.fd);
}

void MetricsServer::stop() {
  if (!thread_.joinable()) return;
  (void)!write(wake_[1], "x", 1);
  thread_.join();
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
  listen_fd_ = wake_[0] = wake_[1] = -1;
}

}  // namespace fp
