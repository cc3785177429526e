// Talking to systemd (Type=notify): readiness, a status line, stopping, and
// the watchdog. Every call is a no-op when the daemon was not started by
// systemd (no NOTIFY_SOCKET), so the code calls them unconditionally.
#pragma once

#include <cstdint>
#include <string>

namespace fp::sd {

// READY=1 with a STATUS= line: the probe is attached and the first sample ran.
void ready(const std::string& status);
// STATUS=...: what `systemctl status faultprobed` shows.
void status(const std::string& text);
// STOPPING=1: a clean stop (SIGTERM/SIGINT) began.
void stopping();

// WatchdogSec= support: pings at half the interval systemd asked for, from
// the sampling loop, so a wedged loop gets the daemon restarted. Long waits
// on the loop's thread (util/keepalive.h: a helper command, a shutdown grace)
// ping too once install_keepalive() made this the hook: they are work, not a
// wedge, and each has its own timeout.
class Watchdog {
 public:
  Watchdog();  // reads WATCHDOG_USEC/WATCHDOG_PID
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool enabled() const { return interval_ns_ != 0; }
  void ping_if_due(uint64_t now_ns);
  // Makes fp::keepalive() ping this watchdog (CLOCK_MONOTONIC) until destroyed.
  void install_keepalive();

 private:
  uint64_t interval_ns_ = 0;  // half of WATCHDOG_USEC
  uint64_t last_ns_ = 0;
};

}  // namespace fp::sd
