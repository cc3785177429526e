#include "act/checkpoint_trust.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <utility>

#include "act/process.h"
#include "act/spawn.h"

namespace fp {
namespace {

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string part = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    if (!part.empty() && part != ".") out.push_back(part);
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return out;
}

// Why a directory is not trusted, or "" when it is. `last`: the checkpoint
// directory itself (no sticky exemption).
std::string distrust(const struct stat& sb, std::optional<uid_t> owner, bool last) {
  if (sb.st_uid != 0 && (!owner || sb.st_uid != *owner))
    return "is owned by uid " + std::to_string(sb.st_uid) + ", neither root" +
           (owner ? " nor the service's user (uid " + std::to_string(*owner) + ")" : std::string());
  if (!last && (sb.st_mode & S_ISVTX)) return "";
  if (sb.st_mode & S_IWOTH) return "is writable by others";
  if (sb.st_mode & S_IWGRP) return "is writable by its group";
  return "";
}

Result<TrustedDir> walk(const std::string& path, std::optional<uid_t> owner, bool create) {
  auto refuse = [&](int code, const std::string& where, const std::string& why) {
    return Error{code, "checkpoint directory " + path + " is not trusted: " + where + " " + why};
  };
  if (path.empty() || path.front() != '/') return Error{EINVAL, "checkpoint directory " + path + " is not absolute"};
  const auto parts = components(path);
  TrustedDir cur(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cur.fd() < 0) return Error::from_errno(errno, "cannot open /");
  std::string at = "/";
  for (size_t i = 0; i <= parts.size(); ++i) {
    const bool last = i == parts.size();
    struct stat sb {};
    if (::fstat(cur.fd(), &sb) != 0) return Error::from_errno(errno, "cannot stat " + at);
    if (std::string why = distrust(sb, owner, last); !why.empty()) return refuse(EPERM, at, why);
    if (last) break;
    const std::string& name = parts[i];
    if (name == "..") return refuse(EINVAL, path, "has a \"..\" component");
    const std::string next_at = at == "/" ? "/" + name : at + "/" + name;
    int fd = ::openat(cur.fd(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.fd(), name.c_str(), 0755) != 0 && errno != EEXIST)
        return Error::from_errno(errno, "cannot create " + next_at);
      fd = ::openat(cur.fd(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      const int err = errno;
      // O_NOFOLLOW|O_DIRECTORY on a symlink fails with ELOOP or ENOTDIR.
      struct stat lsb {};
      if (::fstatat(cur.fd(), name.c_str(), &lsb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lsb.st_mode))
        return refuse(ELOOP, next_at, "is a symlink");
      return Error::from_errno(err, "cannot open " + next_at);
    }
    cur = TrustedDir(fd);
    at = next_at;
  }
  return cur;
}

}  // namespace

TrustedDir& TrustedDir::operator=(TrustedDir&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

TrustedDir::~TrustedDir() {
  if (fd_ >= 0) ::close(fd_);
}

Result<TrustedDir> open_trusted_dir(const std::string& path, std::optional<uid_t> owner) {
  return walk(path, owner, false);
}

Result<TrustedDir> ensure_trusted_dir(const std::string& path, std::optional<uid_t> owner, gid_t group) {
  auto dir = walk(path, owner, true);
  if (!dir || !owner) return dir;
  struct stat sb {};
  if (::fstat(dir->fd(), &sb) != 0) return Error::from_errno(errno, "cannot stat " + path);
  // Through the fd we checked: a path could have been swapped since.
  if (sb.st_uid != *owner && ::fchown(dir->fd(), *owner, group) != 0)
    return Error::from_errno(errno, "cannot hand " + path + " to uid " + std::to_string(*owner));
  return dir;
}

Result<void> verify_restored_process(pid_t pid, uint64_t restore_began_ns, const std::string& command0,
                                     const std::string& proc_root) {
  const std::string who = "restore.pid names pid " + std::to_string(pid);
  if (pid <= 1) return Error{EINVAL, who + ": not a process a restore makes"};
  auto start = process_start_ns(pid, proc_root);
  if (!start) return Error{ESRCH, who + ", which is not running"};
  // /proc has the start time to a clock tick: allow one, and the suspend jitter.
  if (*start + 20'000'000ull < restore_began_ns)
    return Error{EPERM, who + ", which started before the restore: not adopted"};
  if (command0.empty()) return {};
  auto exe = read_link_path(proc_root + "/" + std::to_string(pid) + "/exe");
  if (!exe) return Error{ESRCH, who + ": cannot read its executable: " + exe.error().message};
  auto base = [](const std::string& p) { return p.substr(p.rfind('/') + 1); };
  bool match;
  if (command0.front() == '/') {
    char buf[PATH_MAX];
    match = ::realpath(command0.c_str(), buf) != nullptr && *exe == buf;
  } else {
    match = base(*exe) == base(command0);
  }
  if (!match) return Error{EPERM, who + ", which runs " + *exe + ", not " + command0 + ": not adopted"};
  return {};
}

}  // namespace fp
