// A loopback TCP (or UDP) port nobody listens on: bound, then closed (0 when none
// could be had). The network tests connect to it (refused) or serve on it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace fp::test_support {

inline uint16_t unused_loopback_port(int type = SOCK_STREAM) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}

// The same for UDP.
inline uint16_t unused_udp_loopback_port() { return unused_loopback_port(SOCK_DGRAM); }

}  // namespace fp::test_support
