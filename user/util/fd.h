// A file descriptor owned by one object: closed when it goes out of scope,
// so an early return or an exception cannot leak it into a child or keep a
// pidfd (and the process's slot) alive.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace fp {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  // Keeps errno: a caller that closes on its way to report an error reports
  // the error, not close()'s.
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      const int err = errno;
      ::close(fd_);
      errno = err;
    }
    fd_ = fd;
  }

 private:
  int fd_;
};

}  // namespace fp
