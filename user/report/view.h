// The live view of the host: what the daemon publishes once per second (or
// on request) to the socket API, Prometheus and `faultprobe top`, and what
// `top` builds itself when no daemon runs. Plain data plus JSON transport.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "detect/detector.h"
#include "detect/fault.h"
#include "detect/process_table.h"
#include "faultprobe/abi.h"
#include "probe/psi.h"
#include "procinfo.h"

namespace fp {

// One process over the last rate window (1 s by default).
struct ProcessRow {
  uint32_t pid = 0;
  uint64_t start_ns = 0;
  uint32_t uid = 0;
  std::string user;           // name from the passwd database, else the uid as text
  std::string comm;
  std::string cgroup;
  double cpu_pct = 0;         // % of one CPU (all threads)
  double runq_p99_ms = 0;     // run-queue wait p99 over the window (0 if no waits)
  double dstate_ms = 0;       // D-state time in the window (ms), ongoing included
  bool in_dstate = false;     // in uninterruptible sleep now
  // What the process read and wrote (task IO accounting, as iotop: a
  // buffered writer is charged its bytes, not the flusher that writes them).
  double io_read_bps = 0, io_write_bps = 0;
  double io_lat_p99_ms = 0;   // of the block requests it submitted itself
  uint64_t io_errors = 0;     // cumulative, of the requests it submitted
  double dirty_throttle_ms = 0;  // paused in dirty-page balancing in the window (ms)
  uint64_t cpu_total_ns = 0;  // cumulative CPU time the probe counted (since the probe was loaded)
  double faults_per_s = 0;    // user page faults
  double reclaim_ms = 0;      // direct-reclaim stall in the window (ms)
  uint64_t rss_bytes = 0;
  double forks_per_s = 0;
  // Network, charged to the socket's owner: TCP retransmits and the share of
  // the segments it sent that they are (0 when it sent none), failed connects,
  // resets sent and received, packets dropped with a reason (not a top column:
  // the table is full; in the view's JSON and Prometheus).
  double net_retrans_per_s = 0, net_retrans_share = 0;
  double net_connect_fail_per_s = 0, net_resets_per_s = 0;
  double net_drops_per_s = 0;
  std::string state = "ok";   // "ok", the open fault's class, "throttled", "restarted"
  nlohmann::json evidence;    // of the open fault, null when none
  bool idle = false;          // did nothing in the window (its counters did not move) and is not in D
  bool kernel = false;        // a kernel thread
};

// The host's pressure stall information for one resource (/proc/pressure/<r>).
struct HostPsi {
  bool ok = false;                    // read (false: no PSI, a kernel booted psi=0)
  double some_avg10 = 0;              // % of the last 10 s some task stalled
  std::optional<double> full_avg10;   // % all non-idle tasks stalled (absent: host cpu before 5.13)
  uint64_t some_total_us = 0, full_total_us = 0;  // cumulative stall time
};

struct HostStats {
  unsigned ncpus = 1;
  double cpu_pct = 0;               // busy % of all CPUs (from /proc/stat) over the window
  uint64_t mem_total_bytes = 0, mem_available_bytes = 0;
  double io_read_bps = 0, io_write_bps = 0;  // all block devices (from /proc/diskstats)
  std::array<HostPsi, 3> psi{};     // by PsiResource (cpu, memory, io)
};

struct ProbeHealth {
  std::array<uint64_t, FP_DROP_NR> drops{};  // cumulative, by fp_drop_reason
  uint64_t drops_total = 0;
  double sample_hz = 0;             // ticks per second actually achieved
  uint64_t ticks = 0;
  double tick_us_p50 = 0, tick_us_p99 = 0;  // CPU time per tick (the sampler's cost)
  uint64_t procs_tracked = 0;       // slots in use
  uint64_t max_procs = 0;
  uint64_t malformed_events = 0;
};

// Totals since the daemon started (Prometheus counters).
struct Counters {
  std::map<std::string, uint64_t> faults_by_class;      // opened
  std::map<std::string, uint64_t> resolved_by_class;
  std::map<std::string, uint64_t> actions;              // key "type/result", e.g. "throttle/ok"
  uint64_t syslog_sent = 0, syslog_suppressed = 0, syslog_forward_failures = 0;
};

struct DaemonView {
  uint64_t realtime_ns = 0;         // when it was built (wall clock)
  uint64_t window_ns = 0;           // the rate window of the rows
  std::string hostname;
  HostStats host;
  ProbeHealth health;
  std::vector<ProcessRow> procs;    // active processes first: sorted by cpu_pct descending
  std::vector<nlohmann::ordered_json> open_faults;  // fault_to_json() of each open fault
  Counters counters;
  nlohmann::json status = nlohmann::json::object();  // daemon status (hooks, maps, rules, criu, ...)
};

// The rows of every process the table knows, over the last `window_ns`
// ending at `now_ns`. `open` marks the state of processes with open faults;
// `throttled` / `restarted` pids get that state when they have no open fault.
std::vector<ProcessRow> build_rows(const ProcessTable& table, uint64_t now_ns, uint64_t window_ns,
                                   ProcInfoSource& infos, const std::vector<FaultRecord>& open,
                                   const std::vector<uint32_t>& throttled = {},
                                   const std::vector<uint32_t>& restarted = {});

// Host CPU/IO rates need two readings: keep one of these and call sample()
// once per window.
class HostSampler {
 public:
  explicit HostSampler(std::string proc_root = "/proc");
  HostStats sample(uint64_t now_ns);

 private:
  std::string root_;
  uint64_t last_ns_ = 0, last_busy_ = 0, last_total_ = 0, last_rd_sectors_ = 0, last_wr_sectors_ = 0;
};

// The user name of a uid from the passwd database (getpwuid_r), else the uid
// as text. Cached for the life of the process (thread-safe).
std::string user_name(uint32_t uid);

// The STATE column: an open fault's class wins over "throttled", which wins
// over "restarted", else "ok".
std::string row_state(const FaultRecord* fault, bool throttled, bool restarted);

nlohmann::json view_to_json(const DaemonView& v);
// Lenient reader for the CLI: missing fields keep their defaults.
DaemonView view_from_json(const nlohmann::json& j);

}  // namespace fp
