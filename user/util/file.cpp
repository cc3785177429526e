#include "util/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "util/fd.h"

namespace fp {
namespace {

// Appends to `out` until EOF or `cap` bytes; 0, or the errno of the failed read.
int read_all(int fd, size_t cap, std::string& out) {
  char buf[4096];
  while (out.size() < cap) {
    ssize_t n = ::read(fd, buf, std::min(sizeof(buf), cap - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  return 0;
}

}  // namespace

Result<std::string> read_file(const std::string& path, size_t cap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::from_errno(errno, "cannot open " + path);
  std::string out;
  if (int err = read_all(fd.get(), cap, out)) return Error::from_errno(err, "cannot read " + path);
  return out;
}

std::string read_file_partial(const std::string& path, size_t cap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  std::string out;
  if (fd.valid()) read_all(fd.get(), cap, out);
  return out;
}

}  // namespace fp
