// The daemon's configuration: TOML file -> typed structs. The parser never
// reaches into the engine; the engine is built from these.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detect/fault_class.h"
#include "util/result.h"

namespace fp {

// Which processes a rule (or later a policy) applies to. Every field that is
// set must match; an empty match matches everything.
struct ProcessMatch {
  std::optional<std::string> comm;    // glob (fnmatch) on comm
  std::optional<std::string> exe;     // glob on the executable path
  std::optional<std::string> cgroup;  // glob on the cgroup path
  std::optional<std::string> unit;    // glob on the systemd unit
  std::optional<uint32_t> uid;
  std::optional<std::string> service;  // glob on the [[service]] that runs it (policies only)
  bool empty() const { return !comm && !exe && !cgroup && !unit && !uid && !service; }
};

// host_pressure: which resource a rule watches and how. some/full: the PSI
// stall share (avg10, %); used: utilisation (cpu busy %, memory used %, io
// MB/s read + written).
struct PressureRule {
  enum class Resource { Cpu, Memory, Io };
  enum class Kind { Some, Full, Used };
  Resource resource = Resource::Memory;
  Kind kind = Kind::Some;
  // "": the host's PSI. Else a cgroup v2 path ("/system.slice/db.service")
  // whose own *.pressure files the rule reads; its culprit and victims are
  // the group's members (detect/cgroup_pressure.h).
  std::string cgroup;
};

// app_errors, written as a [[logwatch]] section: the log file followed and the
// pattern a line must match to count (detect/logwatch.h).
struct LogWatchRule {
  // The source: a file (path), or the systemd journal (journal: the host's
  // own when journal_dir is "", else that directory of journal files).
  std::string path;     // absolute; a regular file, never opened through a symlink
  bool journal = false;
  std::string journal_dir;
  std::string unit;     // journal only: entries of _SYSTEMD_UNIT=unit ("" = all)
  // RE2 (linear time whatever the line: the lines are the logging process's
  // to choose). A named group "pid" ((?P<pid>[0-9]+)) takes the writer's pid
  // from the line; else the kernel names the writer (fanotify), else the
  // rule's match must select one live process.
  std::string pattern;
};

struct RuleConfig {
  std::string name;                 // built-ins are named after their class
  FaultClass cls = FaultClass::Anomaly;
  bool enabled = true;
  Severity severity = Severity::Warning;
  double threshold = 0;             // opens above this (unit per class, see defaults in config.cpp)
  double resolve = 0;               // an open fault stays open while above this (hysteresis)
  std::chrono::nanoseconds hold{0};     // `for`: how long the condition must hold before opening
  std::chrono::nanoseconds window{std::chrono::seconds(10)};  // span the metric is computed over
  std::chrono::nanoseconds clear{std::chrono::seconds(0)};    // how long it must stay clear to resolve
  uint32_t count = 0;               // class-specific count (crash_loop: crashes in window; io: min requests;
                                    // fork_bomb: live members of a breeding group that open it whatever its rate)
  // memory_leak: a steady climb whose slope would exhaust the memory left to
  // the process (its memory cgroup's limit, else the host's MemAvailable)
  // within `horizon` opens it early; 0 turns the forecast off.
  std::chrono::nanoseconds horizon{0};
  PressureRule pressure;            // host_pressure only
  LogWatchRule logwatch;            // app_errors only
  // net_retransmits only: the share of the segments the process sent in the
  // window that must be retransmissions (0..1) besides the rate.
  double min_share = 0;
  ProcessMatch match;
};

// One rung of a policy's action ladder: "throttle:cpu=20%", "throttle:memory=256M",
// "throttle:io=10M" (bytes/s, read and write), "throttle:pids=64" (several
// limits may be joined with ","), "restart", "restore", "kill".
struct ThrottleLimits {
  std::optional<double> cpu_share;        // fraction of one CPU, 0.2 = "20%"
  std::optional<uint64_t> memory_bytes;   // memory.high (v2) / soft+hard limit (v1)
  std::optional<uint64_t> io_bps;         // read and write bytes/s on every device the process used
  std::optional<uint64_t> pids;           // pids.max
  bool empty() const { return !cpu_share && !memory_bytes && !io_bps && !pids; }
  auto operator<=>(const ThrottleLimits&) const = default;
};

enum class ActionType { Throttle, Unthrottle, Restart, Restore, Kill };
const char* action_type_name(ActionType t);

struct LadderStep {
  ActionType type = ActionType::Throttle;
  ThrottleLimits limits;  // for Throttle
  std::string text;       // as written in the config, for logs
};
// Parses one ladder entry; the error says what is accepted.
Result<LadderStep> parse_ladder_step(std::string_view text);

// [[policy]]: which processes may be acted on, and how, per fault class.
// Without a policy a fault is only reported.
struct PolicyConfig {
  std::string name;
  ProcessMatch match;  // must not be empty (an empty match would let it act on everything)
  std::vector<std::pair<FaultClass, std::vector<LadderStep>>> on;  // class -> ladder, in file order
  std::chrono::nanoseconds cooldown{std::chrono::seconds(30)};  // clear this long before unthrottle / next act
  std::chrono::nanoseconds recovery_window{std::chrono::seconds(10)};  // watch after an action, then escalate
  uint32_t budget = 5;  // actions on one process per hour
  bool dry_run = false;
  // Whether the policy covers units of users' own managers (user@UID.service's
  // subtree, where the user names the cgroups): its `unit` glob matches them,
  // and `restart` goes through `systemctl --user -M UID@`. Off: a `unit` glob
  // matches system units only, and restarting a user unit's process is refused.
  bool user_units = false;
  const std::vector<LadderStep>* ladder(FaultClass c) const {
    for (const auto& [cls, steps] : on)
      if (cls == c) return &steps;
    return nullptr;
  }
};

// [[service]]: a process faultprobed starts and supervises.
struct CheckpointConfig {
  enum class Backend { None, App, Criu };
  Backend backend = Backend::None;
  std::string dir;                          // app: where the service writes complete checkpoints; criu: image root
  std::chrono::nanoseconds every{std::chrono::seconds(30)};  // criu dump period
  uint32_t keep = 3;                        // checkpoints kept (criu; app ones are the service's own)
};

struct ServiceConfig {
  std::string name;
  std::vector<std::string> command;         // argv; command[0] an absolute path
  std::string user;                         // "" = root
  std::string cwd;                          // "" = "/"
  std::vector<std::pair<std::string, std::string>> env;
  enum class Restart { No, OnFailure, Always };
  Restart restart = Restart::OnFailure;
  std::chrono::nanoseconds stop_grace{std::chrono::seconds(5)};   // SIGTERM -> SIGKILL
  std::chrono::nanoseconds backoff_initial{std::chrono::milliseconds(100)};
  std::chrono::nanoseconds backoff_max{std::chrono::seconds(30)};
  uint32_t crash_loop_limit = 5;            // failed starts within crash_loop_window -> stays down
  std::chrono::nanoseconds crash_loop_window{std::chrono::seconds(60)};
  CheckpointConfig checkpoint;
};

// Limits on every action, across policies.
struct ActionLimits {
  uint32_t global_per_minute = 30;  // token bucket over all actions
};

// Where the daemon speaks: syslog, the socket, Prometheus.
struct DaemonConfig {
  bool syslog = true;                       // local syslog (facility daemon)
  std::string syslog_forward;               // "udp://host:port" or "tcp://host:port", "" = none
  uint32_t syslog_burst = 20;               // alert lines per syslog_per_seconds before suppressing
  std::chrono::nanoseconds syslog_per{std::chrono::seconds(10)};
  std::string socket_path = "/run/faultprobe/faultprobe.sock";
  std::string socket_group;                 // "" = root only
  std::string metrics_listen;               // "127.0.0.1:9464"; "" = off
  uint32_t metrics_top_n = 20;              // per-process series per resource
  std::string pin_dir = "/sys/fs/bpf/faultprobe";
  std::string lock_path = "/run/faultprobe/faultprobed.lock";
  // Open faults and throttles kept across a daemon restart: under /var/lib, not
  // /run, which systemd empties when the unit restarts (RuntimeDirectory=).
  std::string state_dir = "/var/lib/faultprobe";
  std::string log_dir = "/var/log/faultprobe";  // supervised services' stdout/stderr (<name>.log)
  uint32_t max_procs = 0;                   // probe slots; 0 = sized from the machine at start
  // "auto": cgroup v2, else v1, else the SIGSTOP/SIGCONT duty cycle; "signal":
  // the duty cycle always (no cgroup is touched; cpu limits only).
  std::string throttle_backend = "auto";
};

// [hardware]: the hardware fault sources. The kernel ones are loaded when
// the kernel has them (see `faultprobe status`); these switches only decide
// whether their events are judged.
struct HardwareConfig {
  bool mce = true;      // mce:mce_record -> hw_mce
  bool memory = true;   // ras:mc_event (EDAC) -> hw_memory_error
  bool pcie = true;     // ras:aer_event -> hw_pcie_error
  bool disk = true;     // block:block_rq_error -> hw_disk_error
  bool thermal = true;  // thermal:thermal_temperature / thermal_zone_trip -> hw_thermal
  bool hwmon = true;    // hwmon sensors -> hw_thermal, hw_voltage
  std::string hwmon_root = "/sys/class/hwmon";
  std::chrono::nanoseconds hwmon_interval{std::chrono::seconds(5)};
};

// An address of daemon.metrics_listen ("host:port") or daemon.syslog_forward
// ("udp://host:port", "tcp://host:port"). host is a name, an IPv4 address or
// a bracketed IPv6 one ("[::1]:9464"); port 1..65535.
struct NetAddress {
  std::string scheme;  // "udp" or "tcp"; "" when parsed without a scheme
  std::string host;    // without the brackets of an IPv6 literal
  uint16_t port = 0;
};
// The error says what is accepted.
Result<NetAddress> parse_net_address(std::string_view text, bool with_scheme);

struct Config {
  std::chrono::nanoseconds sample_interval{std::chrono::milliseconds(100)};
  std::vector<RuleConfig> rules;    // built-ins (after overrides) then added rules
  // Never blamed as culprit nor acted on (besides pid 1 and kernel threads):
  // names or globs matched against comm and the executable's file name, or
  // executable paths ("/usr/sbin/sshd"); the executable must be root's
  // (detect/protection.h).
  std::vector<std::string> protected_comms;
  std::vector<PolicyConfig> policies;
  std::vector<ServiceConfig> services;
  ActionLimits limits;
  DaemonConfig daemon;
  HardwareConfig hardware;
  std::string source;               // file it came from ("<built-in>")
  // [[logwatch]] sections left out for a mistake (a pattern that does not
  // compile, a bad path, ...): one message each, FILE:LINE:COLUMN and the
  // key. The rest of the config is used; `faultprobe check-config` fails on
  // them and the daemon logs them as errors and shows them in its status.
  std::vector<std::string> left_out;
};

// The built-in defaults: one rule per class, sensible on a busy server.
Config default_config();

// Parses TOML text. Errors read "FILE:LINE:COLUMN: what was wrong, what was expected".
Result<Config> parse_config(std::string_view toml_text, std::string_view filename);
Result<Config> load_config_file(const std::string& path);

}  // namespace fp
