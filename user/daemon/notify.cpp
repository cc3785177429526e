#include "daemon/notify.h"

#include <systemd/sd-daemon.h>

#include <spdlog/spdlog.h>

namespace fp::sd {
namespace {

void send(const std::string& state) {
  // unset_environment=0: we notify more than once. Services we spawn get an
  // explicit environment (act/spawn.h), so NOTIFY_SOCKET does not leak to them.
  int r = sd_notify(0, state.c_str());
  if (r < 0) spdlog::debug("sd_notify({}) failed: {}", state, r);
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
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) interval_ns_ = usec * 1000 / 2;
}

void Watchdog::ping_if_due(uint64_t now_ns) {
  if (interval_ns_ == 0 || now_ns - last_ns_ < interval_ns_) return;
  send("WATCHDOG=1");
  last_ns_ = now_ns;
}

}  // namespace fp::sd
