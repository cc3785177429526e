#include "util/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "util/fd.h"

namespace fp {

Result<InstanceLock> InstanceLock::acquire(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && ::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::from_errno(errno, "cannot create the lock directory " + parent.string());
  Fd lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  const int fd = lock.get();
  if (fd < 0) return Error::from_errno(errno, "cannot open the lock file " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return Error::from_errno(err, "cannot lock " + path);
    // The holder wrote its pid right after locking; it may be mid-write.
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
    std::string who = pid > 0 ? "pid " + std::to_string(pid) + ", lock " + path : "lock " + path;
    return Error{EBUSY, "faultprobed is already running (" + who + ")"};
  }
  (void)!::fchmod(fd, 0600);  // root's only: a file an older daemon made 0644 is tightened too
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    return Error::from_errno(errno, "cannot write our pid into " + path);
  }
  return InstanceLock(lock.release(), path);
}

InstanceLock::InstanceLock(InstanceLock&& o) noexcept = default;
InstanceLock& InstanceLock::operator=(InstanceLock&& o) noexcept = default;
InstanceLock::~InstanceLock() = default;

}  // namespace fp
