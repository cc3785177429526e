#include "act/cgroupfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string_view>

#include "util/file.h"

namespace fp {

bool on_cgroupfs(const std::string& path) {
  struct statfs st {};
  if (::statfs(path.c_str(), &st) != 0) return false;
  return st.f_type == CGROUP_SUPER_MAGIC || st.f_type == CGROUP2_SUPER_MAGIC;
}

Result<std::string> read_text(const std::string& path) { return read_file(path, SIZE_MAX); }

Result<void> write_control(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    // The kernel creates every control file with the group; a fake tree
    // cannot, so create it here. On cgroupfs ENOENT stays an error.
    auto slash = path.rfind('/');
    if (slash != std::string::npos && !on_cgroupfs(path.substr(0, slash)))
      fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0644);
    else
      errno = ENOENT;
  }
  if (fd < 0) return Error::from_errno(errno, "opening " + path);
  ssize_t n;
  do n = ::write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (n < 0) return Error::from_errno(err, "writing \"" + value + "\" to " + path);
  if (size_t(n) != value.size()) return Error::from_errno(EIO, "short write of \"" + value + "\" to " + path);
  return {};
}

Result<void> make_group(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Error::from_errno(errno, "creating " + dir);
  return {};
}

Result<void> remove_group(const std::string& dir) {
  if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return {};
  int err = errno;
  if ((err == ENOTEMPTY || err == EEXIST) && !on_cgroupfs(dir)) {
    // A fake tree: remove the "control files" the kernel would have dropped
    // with the group; sub-directories (child groups) keep it busy, as they do
    // on cgroupfs.
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        std::string p = dir + "/" + name;
        struct stat st {};
        if (::lstat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) ::unlink(p.c_str());
      }
      ::closedir(d);
    }
    if (::rmdir(dir.c_str()) == 0) return {};
    err = errno;
  }
  return Error::from_errno(err, "removing " + dir);
}

Result<std::vector<pid_t>> read_group_pids(const std::string& dir) {
  auto text = read_text(dir + "/cgroup.procs");
  if (!text.ok()) return text.error();
  std::vector<pid_t> pids;
  std::string_view s = *text;
  while (!s.empty()) {
    size_t eol = s.find('\n');
    std::string_view line = s.substr(0, eol);
    pid_t pid = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec == std::errc() && p != line.data() && pid > 0) pids.push_back(pid);
    if (eol == std::string_view::npos) break;
    s.remove_prefix(eol + 1);
  }
  return pids;
}

// By pid, as cgroup.procs takes it: callers check the process through a
// pidfd first (RealActuator::throttle states the race that leaves).
Result<void> move_process(pid_t tgid, const std::string& dir) {
  return write_control(dir + "/cgroup.procs", std::to_string(tgid));
}

std::vector<std::string> list_subdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    // /sys/block entries are symlinks to directories: follow them.
    if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) out.push_back(name);
  }
  ::closedir(d);
  return out;
}

}  // namespace fp
