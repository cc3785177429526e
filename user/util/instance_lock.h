// One faultprobed per host: the pinned probe's dirty bitmap is consumed by
// its reader, so two daemons on the same pins would each see half of the
// changes. An flock on a file in /run: released by the kernel however the
// holder dies (kill -9 included), so a stale lock never blocks a restart.
#pragma once

#include <string>

#include "util/fd.h"
#include "util/result.h"

namespace fp {

inline constexpr const char* kDefaultLockPath = "/run/faultprobe/faultprobed.lock";

class InstanceLock {
 public:
  // Creates the parent directory (0755) and the file, takes an exclusive
  // lock without waiting and writes our pid into it. When another process
  // holds it: EBUSY, "faultprobed is already running (pid N, lock PATH)".
  static Result<InstanceLock> acquire(const std::string& path);

  InstanceLock(InstanceLock&& o) noexcept;
  InstanceLock& operator=(InstanceLock&& o) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  // Releases the lock. The file stays: unlinking it would let a newcomer lock
  // a fresh inode while a third process still waits on the old one.
  ~InstanceLock();

  const std::string& path() const { return path_; }

 private:
  InstanceLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Fd fd_;
  std::string path_;
};

}  // namespace fp
