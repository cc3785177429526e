#include "server/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/text.h"

namespace fp {
namespace {

using SteadyClock = std::chrono::steady_clock;

// A reply line may hold a whole view of a big host; past this the daemon is
// not speaking our protocol.
constexpr size_t kMaxReplyBytes = size_t(256) << 20;

int ms_left(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left < 0 ? 0 : int(std::min<long long>(left, 1 << 30));
}

// Waits for `events` on fd: 1 ready, 0 timed out, -1 error (errno set). A
// signal (the CLI's SIGINT) ends the wait early like a timeout, so that the
// caller gets to look at its flag.
int wait_fd(int fd, short events, SteadyClock::time_point deadline) {
  pollfd p{fd, events, 0};
  int rc = ::poll(&p, 1, ms_left(deadline));
  if (rc < 0 && errno == EINTR) return 0;
  return rc;
}

}  // namespace

Result<Client> Client::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Error{ENAMETOOLONG, "socket path '" + path + "' is empty or too long"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno(errno, "socket");
  // A UNIX connect only blocks while the daemon's accept queue is full;
  // SO_SNDTIMEO bounds that wait.
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err == EACCES || err == EPERM)
      return Error::from_errno(err, "connecting to " + path + " (is this user in the socket group?)");
    if (err == EAGAIN || err == EINPROGRESS) err = ETIMEDOUT;
    return Error::from_errno(err, "connecting to " + path);
  }
  return Client(fd);
}

Client::Client(Client&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)) { o.fd_ = -1; }

Client& Client::operator=(Client&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    o.fd_ = -1;
  }
  return *this;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Result<nlohmann::json> Client::request(const nlohmann::json& req, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return Error{EBADF, "not connected"};
  auto deadline = SteadyClock::now() + timeout;
  std::string line = safe_dump(req) + "\n";
  size_t sent = 0;
  int send_err = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd_, POLLOUT, deadline);
      if (w > 0) continue;
      if (w == 0) return Error{ETIMEDOUT, "faultprobed did not take the request in time"};
    }
    send_err = errno;
    break;
  }
  // A refused client is told why before the daemon hangs up, so the send can
  // fail while the reason waits to be read: look for it before giving up.
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  auto reply = next_line(send_err ? std::chrono::milliseconds(0) : left);
  if (!reply) {
    if (send_err) return Error::from_errno(send_err, "sending to faultprobed");
    return reply.error();
  }
  if (!*reply) {
    if (send_err) return Error::from_errno(send_err, "sending to faultprobed");
    return Error{ETIMEDOUT, "no reply from faultprobed within " + std::to_string(timeout.count()) + " ms"};
  }
  nlohmann::json& j = **reply;
  if (!j.is_object() || !j.contains("ok")) return Error{EPROTO, "unexpected reply from faultprobed: " + safe_dump(j)};
  if (j["ok"] != true) {
    std::string msg = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>()
                                                                    : "faultprobed refused the request";
    return Error{0, msg};
  }
  return std::move(j);
}

Result<std::optional<nlohmann::json>> Client::next_line(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return Error{EBADF, "not connected"};
  auto deadline = SteadyClock::now() + timeout;
  size_t scanned = 0;
  for (;;) {
    size_t nl = buf_.find('\n', scanned);
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) return Error{EPROTO, "malformed line from faultprobed: " + line.substr(0, 200)};
      return std::optional<nlohmann::json>(std::move(j));
    }
    scanned = buf_.size();
    if (buf_.size() > kMaxReplyBytes) return Error{EPROTO, "reply from faultprobed longer than 256 MiB"};
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) {
      buf_.append(chunk, size_t(n));
      continue;
    }
    if (n == 0) {
      return Error{ECONNRESET, buf_.empty() ? "faultprobed closed the connection"
                                            : "faultprobed closed the connection in the middle of a line"};
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      if (errno == ECONNRESET) return Error{ECONNRESET, "faultprobed closed the connection"};
      return Error::from_errno(errno, "reading from faultprobed");
    }
    int w = wait_fd(fd_, POLLIN, deadline);
    if (w == 0) return std::optional<nlohmann::json>();
    if (w < 0) return Error::from_errno(errno, "waiting for faultprobed");
  }
}

}  // namespace fp
