// The outside services the end-to-end tests check faultprobed against, each
// real and private to the test: an rsyslogd receiving RFC 5424 over UDP and
// TCP, a Prometheus server scraping a target. Plus a reader for the system
// syslog file that scripts/start-services makes sure is written.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fp::e2e {

// The size of `path` now (0 if missing): pass it as `from_offset` to see only
// lines written after this point.
size_t file_offset(const std::string& path);

// Polls `log_file` from `from_offset` until a line contains every needle;
// returns that line (without its newline), nullopt at the deadline.
std::optional<std::string> wait_syslog_line(const std::string& log_file, const std::vector<std::string>& needles,
                                            std::chrono::milliseconds deadline, size_t from_offset = 0);
inline std::optional<std::string> wait_syslog_line(const std::string& log_file, const std::string& needle,
                                                   std::chrono::milliseconds deadline, size_t from_offset = 0) {
  return wait_syslog_line(log_file, std::vector<std::string>{needle}, deadline, from_offset);
}

// Polls `pred` every 50 ms until it holds or `deadline` passes (unscaled:
// for services' start-up).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds deadline);

// A port nobody listens on right now on 127.0.0.1 (SOCK_STREAM or SOCK_DGRAM).
uint16_t free_port(int sock_type);

// A child process with its output in a log file; SIGTERM (then SIGKILL) on stop.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess() { stop(); }
  ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  pid_t pid() const { return pid_; }
  bool alive();  // reaps it if it exited
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
};

// rsyslogd -n with its own config, pidfile and work directory in a temp dir:
// imudp and imtcp on 127.0.0.1 (free ports) into one ruleset that writes
//  - received.log: RSYSLOG_SyslogProtocol23Format (RFC 5424 as rsyslog parsed it)
//  - received.jsonl: one JSON object per message with rsyslog's parsed
//    properties: pri, facility, severity, hostname, app, procid, msgid, sd,
//    msg, input ("imudp"/"imtcp").
// rsyslogd's own messages go to internal.log.
class PrivateRsyslog {
 public:
  explicit PrivateRsyslog(std::chrono::milliseconds ready_deadline = std::chrono::seconds(15));
  ~PrivateRsyslog();
  PrivateRsyslog(const PrivateRsyslog&) = delete;
  PrivateRsyslog& operator=(const PrivateRsyslog&) = delete;

  bool ok() const { return ok_; }
  uint16_t udp_port() const { return udp_port_; }
  uint16_t tcp_port() const { return tcp_port_; }
  std::string udp_url() const { return "udp://127.0.0.1:" + std::to_string(udp_port_); }
  std::string tcp_url() const { return "tcp://127.0.0.1:" + std::to_string(tcp_port_); }
  std::string output_file() const { return dir_ + "/received.log"; }
  std::string json_file() const { return dir_ + "/received.jsonl"; }
  std::string dir() const { return dir_; }
  // rsyslogd's stderr and internal messages: for failure messages.
  std::string log() const;

  std::vector<nlohmann::json> records() const;
  std::optional<nlohmann::json> wait_record(const std::function<bool(const nlohmann::json&)>& pred,
                                            std::chrono::milliseconds deadline) const;
  std::optional<std::string> wait_line(const std::string& needle, std::chrono::milliseconds deadline) const {
    return wait_syslog_line(output_file(), needle, deadline);
  }

 private:
  std::string dir_;
  uint16_t udp_port_ = 0, tcp_port_ = 0;
  ChildProcess proc_;
  bool ok_ = false;
};

// What a PrivatePrometheus scrapes (job "faultprobe", path /metrics), the
// rule files it evaluates and the Alertmanager it sends alerts to.
struct PrometheusSetup {
  std::vector<std::string> targets;     // "127.0.0.1:PORT"
  std::vector<std::string> rule_files;  // absolute paths
  std::string alertmanager;             // "127.0.0.1:PORT" or "" (none)
};

// A server of the test's own (Prometheus, Alertmanager): a temp dir for its
// config, data and log, a free port on 127.0.0.1 and its process, stopped
// and removed with the object.
class PrivateHttpService {
 public:
  PrivateHttpService(const PrivateHttpService&) = delete;
  PrivateHttpService& operator=(const PrivateHttpService&) = delete;

  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const;
  // GET PATH?PARAMS: the JSON answer, nullopt when the server did not answer
  // or the answer was not JSON.
  std::optional<nlohmann::json> get_json(const std::string& path,
                                         const std::vector<std::pair<std::string, std::string>>& params = {}) const;

 protected:
  // NAME: the temp dir is /tmp/fp_NAME_XXXXXX, the output NAME.log in it.
  explicit PrivateHttpService(const std::string& name);
  ~PrivateHttpService();
  // Runs argv (its output into the log) and waits until /-/ready answers 200;
  // ok() says whether it did.
  void start(const std::vector<std::string>& argv, std::chrono::milliseconds ready_deadline);
  const std::string& dir() const { return dir_; }

 private:
  std::string name_, dir_;
  uint16_t port_ = 0;
  ChildProcess proc_;
  bool ok_ = false;
};

// /usr/bin/prometheus scraping its targets and evaluating its rules every
// second, storage in its temp dir. Returns once ready (ok() false otherwise).
class PrivatePrometheus : public PrivateHttpService {
 public:
  explicit PrivatePrometheus(const std::string& target,
                             std::chrono::milliseconds ready_deadline = std::chrono::seconds(60))
      : PrivatePrometheus(PrometheusSetup{{target}, {}, ""}, ready_deadline) {}
  explicit PrivatePrometheus(const PrometheusSetup& setup,
                             std::chrono::milliseconds ready_deadline = std::chrono::seconds(60));

  // GET /api/v1/query?query=PROMQL: the whole JSON answer, nullopt when the
  // server did not answer or the answer was not JSON.
  std::optional<nlohmann::json> query(const std::string& promql) const;
  // Polls the query until its first sample's value satisfies `pred`;
  // returns that value (nullopt at the deadline).
  std::optional<double> wait_value(const std::string& promql, const std::function<bool(double)>& pred,
                                   std::chrono::milliseconds deadline) const;
  // Until a target's (`targets` of them: every one's) last scrape succeeded (health "up").
  bool wait_target_up(std::chrono::milliseconds deadline, size_t targets = 1) const;
  std::optional<nlohmann::json> targets() const;  // GET /api/v1/targets
};

}  // namespace fp::e2e
