// A fake NOTIFY_SOCKET for the end-to-end tests: binds a datagram socket,
// keeps every message the daemon sends (READY=1, WATCHDOG=1, ...) with when it
// came, so a test can check the watchdog was pinged on time.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fp::e2e {

// A fake NOTIFY_SOCKET: every datagram the daemon sends, with when it came.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    bound_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 100'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reader_ = std::thread([this] {
      char buf[4096];
      while (!stop_) {
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        std::lock_guard<std::mutex> l(mu_);
        got_.emplace_back(std::chrono::steady_clock::now(), std::string(buf, size_t(n)));
      }
    });
  }
  ~NotifySocket() {
    stop_ = true;
    reader_.join();
    close(fd_);
    unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  // When each WATCHDOG=1 came.
  std::vector<std::chrono::steady_clock::time_point> pings() const {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::chrono::steady_clock::time_point> out;
    for (const auto& [t, m] : got_)
      if (m.find("WATCHDOG=1") != std::string::npos) out.push_back(t);
    return out;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> got_;
  std::thread reader_;
};

}  // namespace fp::e2e
