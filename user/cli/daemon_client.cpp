#include "cli/daemon_client.h"

#include <cerrno>
#include <cstdio>

namespace fp {

std::optional<Client> connect_daemon(const std::string& socket_path) {
  auto c = Client::connect(socket_path, std::chrono::seconds(5));
  if (c) return std::move(*c);
  const Error& e = c.error();
  if (e.code == ENOENT || e.code == ECONNREFUSED || e.code == ENOTDIR)
    std::fprintf(stderr, "faultprobe: faultprobed is not running (no answer on %s)\n", socket_path.c_str());
  else if (e.code == EACCES || e.code == EPERM)
    std::fprintf(stderr,
                 "faultprobe: permission denied on %s: run as root or as a member of the daemon's socket_group\n",
                 socket_path.c_str());
  else
    std::fprintf(stderr, "faultprobe: %s\n", e.message.c_str());
  return std::nullopt;
}

}  // namespace fp
