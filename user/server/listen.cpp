#include "server/listen.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "server/server.h"

namespace fp {
namespace {

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    return Error{ENAMETOOLONG, "socket path '" + path + "' is empty or longer than " +
                                   std::to_string(sizeof addr.sun_path - 1) + " bytes"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<gid_t> lookup_group(const std::string& group) {
  std::vector<char> buf(16384);
  for (;;) {
    struct group gr{}, *out = nullptr;
    int err = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &out);
    if (err == ERANGE && buf.size() < (size_t(1) << 20)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (err != 0) return Error::from_errno(err, "looking up group '" + group + "'");
    if (out == nullptr) return Error{ENOENT, "socket group '" + group + "' does not exist"};
    return gr.gr_gid;
  }
}

// Whether a process still answers on an existing socket file.
Result<bool> socket_answers(const sockaddr_un& addr, const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error::from_errno(errno, "socket");
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (rc == 0 || err == EAGAIN) return true;  // EAGAIN: alive, its accept queue is full
  if (err == ECONNREFUSED) return false;
  return Error::from_errno(err, "probing the existing socket " + path);
}

Result<void> replace_stale(const sockaddr_un& addr, const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return Error::from_errno(errno, "stat " + path);
  }
  if (!S_ISSOCK(st.st_mode))
    return Error{EEXIST, path + " exists and is not a socket; not replacing it"};
  auto live = socket_answers(addr, path);
  if (!live) return live.error();
  if (*live) return Error{EADDRINUSE, "something already answers on " + path + " (is faultprobed running?)"};
  spdlog::info("removing stale socket {}", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::from_errno(errno, "removing stale " + path);
  return {};
}

Result<void> make_parent_dir(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) return {};
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) return {};
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{ec.value(), "creating " + dir.string() + ": " + ec.message()};
  // Whatever the umask: clients must be able to reach the socket inside.
  if (::chmod(dir.c_str(), 0755) != 0) return Error::from_errno(errno, "chmod 0755 " + dir.string());
  return {};
}

}  // namespace

Result<ListenSocket> open_listen_socket(const std::string& path, const std::string& group) {
  auto addr = unix_address(path);
  if (!addr) return addr.error();
  std::optional<gid_t> gid;
  if (!group.empty()) {
    auto g = lookup_group(group);
    if (!g) return g.error();
    gid = *g;
  }
  if (auto r = make_parent_dir(path); !r) return r.error();
  if (auto r = replace_stale(*addr, path); !r) return r.error();

  ListenSocket ls;
  ls.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (ls.fd < 0) return Error::from_errno(errno, "socket");
  auto fail = [&](int err, const std::string& what) -> Error {
    ::close(ls.fd);
    return Error::from_errno(err, what);
  };
  // Between bind and chmod the file has the umask's mode; the peer check on
  // every accepted connection covers that window.
  if (::bind(ls.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
    return fail(errno, "binding " + path);
  auto fail_bound = [&](int err, const std::string& what) -> Error {
    ::unlink(path.c_str());
    return fail(err, what);
  };
  if (::chmod(path.c_str(), 0660) != 0) return fail_bound(errno, "chmod 0660 " + path);
  if (gid && ::chown(path.c_str(), uid_t(-1), *gid) != 0) return fail_bound(errno, "chgrp " + group + " " + path);
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return fail_bound(errno, "stat " + path);
  ls.dev = st.st_dev;
  ls.ino = st.st_ino;
  if (::listen(ls.fd, 128) != 0) return fail_bound(errno, "listen on " + path);
  return ls;
}

void remove_listen_socket(const std::string& path, const ListenSocket& ls) {
  struct stat st{};
  // A newer daemon may have replaced it (after deciding ours was stale).
  if (::lstat(path.c_str(), &st) == 0 && st.st_dev == ls.dev && st.st_ino == ls.ino) ::unlink(path.c_str());
}

Result<SocketServer::PeerCheck> group_peer_check(const std::string& group) {
  if (group.empty()) {
    return SocketServer::PeerCheck([](uid_t uid, gid_t, pid_t) -> std::optional<std::string> {
      if (uid == 0) return std::nullopt;
      return "uid " + std::to_string(uid) + ": only root may use this socket (no socket_group is configured)";
    });
  }
  auto g = lookup_group(group);
  if (!g) return g.error();
  gid_t want = *g;
  return SocketServer::PeerCheck([want, group](uid_t uid, gid_t gid, pid_t) -> std::optional<std::string> {
    if (uid == 0 || gid == want) return std::nullopt;
    std::vector<char> buf(16384);
    struct passwd pw{}, *out = nullptr;
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out != nullptr) {
      int n = 64;
      std::vector<gid_t> groups(static_cast<size_t>(n));
      if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
        groups.resize(size_t(n));  // n now holds the number needed
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) n = 0;
      }
      for (int i = 0; i < n; i++)
        if (groups[size_t(i)] == want) return std::nullopt;
    }
    return "uid " + std::to_string(uid) + " is not in group " + group;
  });
}

}  // namespace fp
