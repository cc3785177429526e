// Alerts to syslog: one line when a fault opens, one when it resolves, one per
// action, recovery verdict or service event; facility daemon; rate-limited so a
// storm of faults cannot flood the log.
//
// The Alerter decides what a line says and whether it may go out; sinks carry
// it: LocalSyslogSink (syslog(3), key=value text) and Rfc5424Forwarder
// (alert/forwarder.h, RFC 5424 with structured data over UDP/TCP).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "act/action.h"
#include "act/clock.h"
#include "alert/syslog_format.h"
#include "config/config.h"
#include "detect/fault.h"
#include "util/result.h"

namespace fp {

// One alert line. `msgid` is the RFC 5424 MSGID and the first word of the
// text ("fault", "resolved", "action", "recovery", "service", "suppressed");
// `text` is what a reader of /var/log/syslog sees: msgid then format_kv(fields).
struct AlertLine {
  int severity = 6;  // LOG_WARNING, LOG_CRIT, ... (<syslog.h>)
  std::string msgid;
  AlertFields fields;
  std::string text;
};

class SyslogSink {
 public:
  virtual ~SyslogSink() = default;
  // Must not block: the daemon's loop calls it.
  virtual void send(const AlertLine& line) = 0;
  // Lines this sink could not deliver (a forwarder's unreachable collector).
  virtual uint64_t failures() const { return 0; }
  virtual std::string describe() const = 0;
};

// syslog(3) with ident "faultprobed", LOG_PID, facility daemon. Several may
// exist (openlog() is shared and closed with the last one). syslog(3) writes
// to /dev/log; when no syslog daemon listens the line is lost (libc's way).
class LocalSyslogSink : public SyslogSink {
 public:
  LocalSyslogSink();
  ~LocalSyslogSink() override;
  void send(const AlertLine& line) override;
  std::string describe() const override { return "local syslog"; }
};

using SyslogSinks = std::vector<std::unique_ptr<SyslogSink>>;
using SinkFactory = std::function<Result<SyslogSinks>(const DaemonConfig&)>;

// The real sinks for a config: local syslog when `syslog`, a forwarder when
// `syslog_forward` is set. A malformed syslog_forward is an error.
Result<SyslogSinks> make_syslog_sinks(const DaemonConfig& cfg);

// LOG_WARNING / LOG_CRIT for a rule's severity.
int syslog_severity(Severity s);

// A token bucket: `burst` lines at once, refilled at burst per `per_ns`.
// burst == 0 means no limit.
class TokenBucket {
 public:
  TokenBucket(uint32_t burst, uint64_t per_ns, uint64_t now_ns);
  bool take(uint64_t now_ns);
  void reset(uint32_t burst, uint64_t per_ns, uint64_t now_ns);

 private:
  void refill(uint64_t now_ns);
  uint32_t burst_;
  uint64_t per_ns_;
  double tokens_;
  uint64_t last_ns_;
};

// A recovery verdict: did the process come back healthy after an action?
struct RecoveryAlert {
  FaultClass cls = FaultClass::Anomaly;
  std::string rule;
  uint32_t pid = 0;
  std::string comm;
  bool recovered = false;
  std::string detail;
};

// Thread-safe: the daemon's loop and the supervisor may both call it.
class Alerter {
 public:
  // Fixed sinks (tests, or a caller that builds its own); reconfigure() then
  // only changes the rate limits.
  Alerter(const DaemonConfig& cfg, Clock& clock, SyslogSinks sinks);
  // Sinks built by `factory` from the config, rebuilt by reconfigure() when
  // syslog / syslog_forward change.
  static Result<std::unique_ptr<Alerter>> create(const DaemonConfig& cfg, Clock& clock,
                                                 SinkFactory factory = make_syslog_sinks);

  // Open: the rule's severity (warning -> LOG_WARNING, critical -> LOG_CRIT).
  void fault_opened(const FaultRecord& r);
  void fault_resolved(const FaultRecord& r);                  // LOG_NOTICE
  void action(const ActionRecord& r);                         // ok NOTICE, failed ERR, skipped/dry run INFO
  void recovery(const RecoveryAlert& r);                      // recovered NOTICE, not recovered WARNING
  // A supervisor event, e.g. ("web", LOG_CRIT, "crash-loop limit reached: 5 failed starts in 60s").
  void service_event(const std::string& service, int severity, const std::string& text);

  // Reports lines suppressed by the limit once the limit lets a line through
  // again, even if no new alert comes. Call it about once a second.
  void tick(uint64_t now_ns);

  // New rate limits (and new sinks when created with a factory). On error the
  // old sinks stay and the limits are still updated.
  Result<void> reconfigure(const DaemonConfig& cfg);

  uint64_t sent() const;              // lines handed to the sinks (summaries included)
  uint64_t suppressed() const;        // lines dropped by the rate limit
  uint64_t forward_failures() const;  // lines the sinks could not deliver
  std::vector<std::string> sinks() const;  // describe() of each sink

 private:
  void emit(AlertLine line);
  void deliver_locked(const AlertLine& line);
  void report_suppressed_locked();

  mutable std::mutex mu_;
  DaemonConfig cfg_;
  Clock& clock_;
  SinkFactory factory_;
  SyslogSinks sinks_;
  TokenBucket normal_, critical_;  // critical lines never wait behind a storm of warnings
  uint64_t sent_ = 0, suppressed_ = 0, pending_suppressed_ = 0;
  uint64_t retired_failures_ = 0;  // failures of sinks replaced by reconfigure()
};

}  // namespace fp
