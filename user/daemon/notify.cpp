// The sd_notify protocol spoken directly (a datagram of KEY=VALUE lines to
// $NOTIFY_SOCKET; sd_notify(3) documents it as stable for this purpose):
// linking libsystemd for it loaded libsystemd, libgcrypt, liblzma, libzstd,
// liblz4 and libcap into the daemon, about 1 MB of its RSS.
#include "daemon/notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "util/keepalive.h"

namespace fp::sd {
namespace {

void send(const std::string& state) {
  // NOTIFY_SOCKET stays set: we notify more than once. Services we spawn get
  // an explicit environment (act/spawn.h), so it does not leak to them.
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t len = std::strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof addr.sun_path) {
    spdlog::debug("NOTIFY_SOCKET={}: not a socket path systemd would give", path);
    return;
  }
  std::memcpy(addr.sun_path, path, len);
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
                     socklen_t(offsetof(sockaddr_un, sun_path) + len));
  if (n < 0) spdlog::debug("sd_notify({}) failed: {}", state, std::strerror(errno));
  close(fd);
}

// An unsigned decimal environment variable, 0 when unset or malformed.
uint64_t env_u64(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return 0;
  uint64_t x = 0;
  auto [p, ec] = std::from_chars(v, v + std::strlen(v), x);
  return ec == std::errc() && *p == '\0' ? x : 0;
}

// A status line must stay one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

}  // namespace

void ready(const std::string& status) { send("READY=1\nSTATUS=" + one_line(status)); }
void status(const std::string& text) { send("STATUS=" + one_line(text)); }
void stopping() { send("STOPPING=1\nSTATUS=stopping"); }

Watchdog::Watchdog() {
  // As sd_watchdog_enabled(): WATCHDOG_USEC, for us if WATCHDOG_PID is unset or ours.
  uint64_t usec = env_u64("WATCHDOG_USEC"), pid = env_u64("WATCHDOG_PID");
  if (usec > 0 && (std::getenv("WATCHDOG_PID") == nullptr || pid == uint64_t(getpid())))
    interval_ns_ = usec * 1000 / 2;
}

namespace {
Watchdog* g_keepalive_watchdog = nullptr;  // the loop thread's, while installed

void keepalive_ping() {
  if (g_keepalive_watchdog == nullptr) return;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  g_keepalive_watchdog->ping_if_due(uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec));
}
}  // namespace

void Watchdog::install_keepalive() {
  if (!enabled()) return;
  g_keepalive_watchdog = this;
  set_keepalive(&keepalive_ping);
}

Watchdog::~Watchdog() {
  if (g_keepalive_watchdog == this) {
    set_keepalive(nullptr);
    g_keepalive_watchdog = nullptr;
  }
}

void Watchdog::ping_if_due(uint64_t now_ns) {
  if (interval_ns_ == 0 || now_ns - last_ns_ < interval_ns_) return;
  send("WATCHDOG=1");
  last_ns_ = now_ns;
}

}  // namespace fp::sd
