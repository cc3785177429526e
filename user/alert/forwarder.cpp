#include "alert/forwarder.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <spdlog/spdlog.h>

#include "util/clock.h"
#include "util/duration.h"
#include "util/guard.h"

namespace fp {
namespace {

std::string local_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "-";
  return buf;
}

std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

}  // namespace

std::string ForwardTarget::url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return std::string(proto == Proto::Udp ? "udp" : "tcp") + "://" + h + ":" + std::to_string(port);
}

Result<ForwardTarget> parse_forward_target(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return Error{EINVAL, "\"" + std::string(url) + "\": " + why + " (expected udp://HOST:PORT or tcp://HOST:PORT)"};
  };
  ForwardTarget t;
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return bad("no scheme");
  std::string_view scheme = url.substr(0, sep), rest = url.substr(sep + 3);
  if (scheme == "udp") {
    t.proto = ForwardTarget::Proto::Udp;
  } else if (scheme == "tcp") {
    t.proto = ForwardTarget::Proto::Tcp;
  } else {
    return bad("unknown scheme \"" + std::string(scheme) + "\"");
  }
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {  // [v6addr]:port
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    t.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("junk after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find(':') != colon) return bad("IPv6 addresses need [brackets]");
    t.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (t.host.empty()) return bad("no host");
  if (t.host.find('/') != std::string::npos) return bad("a path is not allowed");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return bad("bad port \"" + std::string(port_text) + "\"");
    t.port = static_cast<uint16_t>(port);
  }
  return t;
}

Rfc5424Forwarder::Rfc5424Forwarder(ForwardTarget target, Options opts)
    : target_(std::move(target)), opts_(opts), hostname_(local_hostname()), procid_(static_cast<int>(getpid())) {
  // run() returns when stopped; an exception (bad_alloc, a bug) restarts it
  // after a pause instead of ending the daemon.
  worker_ = std::thread([this] {
    while (!guarded("syslog forwarder", [&] { run(); })) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  });
}

Rfc5424Forwarder::~Rfc5424Forwarder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

std::string Rfc5424Forwarder::format(const AlertLine& line, uint64_t realtime_ns) const {
  Rfc5424Header h;
  h.facility = kFacilityDaemon;
  h.severity = line.severity & 7;
  h.realtime_ns = realtime_ns;
  h.hostname = hostname_;
  h.procid = procid_;
  h.msgid = line.msgid;
  // MSG repeats the key=value text: collectors whose templates drop
  // structured data (rsyslog's traditional file format) still show the fields.
  return format_rfc5424(h, format_structured_data(kSdId, line.fields), line.text);
}

void Rfc5424Forwarder::send(const AlertLine& line) {
  std::string msg = format(line, realtime_now_ns());
  std::lock_guard lock(mu_);
  if (stop_) return;
  if (down_ && std::chrono::steady_clock::now() < retry_at_) {
    ++failures_;
    return;
  }
  if (queue_.size() >= opts_.queue_max) {
    queue_.pop_front();  // keep the newest: after an outage the current state matters most
    ++failures_;
  }
  queue_.push_back(std::move(msg));
  cv_.notify_one();
}

bool Rfc5424Forwarder::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

void Rfc5424Forwarder::run() {
  std::unique_lock lock(mu_);
  busy_ = false;  // after a restart (see the constructor)
  bool retried_head = false;  // the line at the queue's head already failed once on a broken connection
  while (true) {
    auto work = [&] {
      return stop_ || (!queue_.empty() && !down_) || (down_ && std::chrono::steady_clock::now() >= retry_at_);
    };
    if (down_)
      cv_.wait_until(lock, retry_at_, work);  // a down collector is retried even when no line waits
    else
      cv_.wait(lock, work);
    if (stop_) break;
    busy_ = true;
    if (fd_ < 0 || (target_.proto == ForwardTarget::Proto::Tcp && peer_closed())) {
      close_socket();
      lock.unlock();
      std::string why;
      bool ok = open_socket(why);
      lock.lock();
      if (!ok) {
        ++connect_failures_;
        backoff_ = std::min(std::max(backoff_ * 2, opts_.backoff_initial), opts_.backoff_max);
        retry_at_ = std::chrono::steady_clock::now() + backoff_;
        if (!down_)
          spdlog::warn("syslog forward to {}: {}; alert lines are dropped and counted until it answers",
                       target_.url(), why);
        down_ = true;
        failures_ += queue_.size();
        queue_.clear();
        retried_head = false;
        busy_ = false;
        idle_cv_.notify_all();
        continue;
      }
      if (down_) spdlog::info("syslog forward to {}: reachable again", target_.url());
      down_ = false;
      backoff_ = std::chrono::milliseconds(0);
    }
    if (queue_.empty()) {
      busy_ = false;
      idle_cv_.notify_all();
      continue;
    }
    std::string line = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string why;
    bool ok = write_line(line, why);
    lock.lock();
    if (ok) {
      ++forwarded_;
      retried_head = false;
    } else if (target_.proto == ForwardTarget::Proto::Tcp && !retried_head) {
      // The connection broke (collector restarted): reconnect and try this line once more.
      spdlog::debug("syslog forward to {}: {}; reconnecting", target_.url(), why);
      close_socket();
      queue_.push_front(std::move(line));
      retried_head = true;
    } else {
      spdlog::debug("syslog forward to {}: {}", target_.url(), why);
      ++failures_;
      retried_head = false;
      if (target_.proto == ForwardTarget::Proto::Tcp) close_socket();
    }
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  failures_ += queue_.size();
  queue_.clear();
  busy_ = false;
  idle_cv_.notify_all();
  close_socket();
}

bool Rfc5424Forwarder::open_socket(std::string& why) {
  bool tcp = target_.proto == ForwardTarget::Proto::Tcp;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(target_.port);
  int rc = getaddrinfo(target_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    why = "cannot resolve " + target_.host + ": " + gai_strerror(rc);
    return false;
  }
  why = "no address for " + target_.host;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | (tcp ? SOCK_NONBLOCK : 0), ai->ai_protocol);
    if (fd < 0) {
      why = errno_text("socket", errno);
      continue;
    }
    if (!tcp) {
      // A connected UDP socket reports the collector's ICMP port-unreachable
      // as ECONNREFUSED on a later send, so refusals are counted.
      if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        fd_ = fd;
        break;
      }
      why = errno_text("connect", errno);
      close(fd);
      continue;
    }
    // TCP: non-blocking connect bounded by connect_timeout, then blocking
    // writes bounded by SO_SNDTIMEO.
    int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      r = poll(&p, 1, static_cast<int>(opts_.connect_timeout.count()));
      if (r == 0) {
        why = "connect: timed out after " + format_duration(opts_.connect_timeout);
        close(fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (r < 0) err = errno;
      else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      r = err ? -1 : 0;
      errno = err;
    }
    if (r != 0) {
      why = errno_text("connect", errno);
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(opts_.send_timeout.count() / 1000),
               static_cast<suseconds_t>(opts_.send_timeout.count() % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fd_ = fd;
    break;
  }
  freeaddrinfo(res);
  return fd_ >= 0;
}

void Rfc5424Forwarder::close_socket() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool Rfc5424Forwarder::peer_closed() const {
  char c;
  ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;  // orderly shutdown by the collector
  return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

bool Rfc5424Forwarder::write_line(const std::string& line, std::string& why) {
  if (target_.proto == ForwardTarget::Proto::Udp) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (::send(fd_, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT) >= 0) return true;
      int err = errno;
      why = errno_text("send", err);
      if (err != ECONNREFUSED || attempt == 1) return false;
      // The refusal belongs to an earlier datagram, which was lost: count it,
      // then this one gets its own try.
      ++failures_;
    }
    return false;
  }
  std::string frame = std::to_string(line.size()) + " " + line;  // RFC 6587 octet counting
  size_t off = 0;
  while (off < frame.size()) {
    ssize_t n = ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = errno == EAGAIN || errno == EWOULDBLOCK ? "send: timed out" : errno_text("send", errno);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace fp
