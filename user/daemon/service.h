// The daemon: probe -> engine (detect, localize) -> handler (handle,
// recover) -> event stream, syslog, socket API, Prometheus.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "act/handler.h"
#include "act/real_actuator.h"
#include "act/systemd_spawner.h"
#include "alert/metrics.h"
#include "alert/syslog.h"
#include "config/config.h"
#include "daemon/service_config.h"
#include "server/status_board.h"
#include "detect/detector.h"
#include "detect/engine.h"
#include "detect/cgroup_pressure.h"
#include "detect/host_pressure.h"
#include "detect/logwatch.h"
#include "detect/hw_sources.h"
#include "detect/cpu_quota.h"
#include "detect/memory_budget.h"
#include "probe/probe.h"
#include "probe/loader/kernel_error_names.h"
#include "probe/loader/net_drop_reasons.h"
#include "probe/loader/net_endpoints.h"
#include "probe/loader/runq_blame.h"
#include "procinfo.h"
#include "report/view.h"
#include "server/server.h"
#include "util/instance_lock.h"

namespace fp {

// ProcInfoCache behind the detectors' interface. The daemon never shows a
// command line (respawn reads its own): it does not read them at all.
class CachedProcInfo : public ProcInfoSource {
 public:
  const ProcInfo& info(const ProcKey& k) override { return cache_.get(k); }
  ProcInfo fresh(uint32_t pid) const { return cache_.read(pid); }
  void prune() { cache_.prune(); }
  size_t size() const { return cache_.size(); }
  ProcInfoCache::Stats stats() const { return cache_.stats(); }

 private:
  ProcInfoCache cache_{"/proc", ProcInfoCacheOptions{0, size_t(16) << 20}};
};

class Service : public ServerProvider {
 public:
  // Loads the config, takes the instance lock and loads (or takes over) the
  // probe. Errors: config (exit 2), already running or probe (exit 1).
  static Result<std::unique_ptr<Service>> create(const ServiceOptions& opts, int* exit_code);
  ~Service() override;

  // Runs until `stop` is set. `reload` set by SIGHUP is consumed here.
  int run(std::atomic<bool>& stop, std::atomic<bool>& reload);

  // ServerProvider (called on the socket server's thread).
  std::string view_json() override;
  nlohmann::json status() override;

 private:
  class Resolver;
  Service() = default;
  Result<void> start_actions(int* exit_code);
  void tick(uint64_t now);
  // Sleeps until a ring-buffer record, a PSI trigger, a client's request or
  // `wait`, in one poll(). Returns what woke it (besides records in events_).
  struct Woken {
    bool stalled = false;  // a PSI trigger fired: tick now
    bool client = false;   // a client waits for a status or a view
  };
  Woken wait_for_events(std::chrono::milliseconds wait);
  void read_pressure(uint64_t now);
  void emit_fault(const FaultRecord& r);
  void emit_action(const ActionRecord& r);
  void emit_recovery(const RecoveryRecord& r);
  void emit_service_event(const SupervisorEvent& e);
  void publish(const nlohmann::ordered_json& line);
  void count_and_log_events();
  void remember_new_processes();
  void rebuild_view(uint64_t now);
  bool view_wanted(uint64_t now) const;
  // Answers what clients wait for: a status built after their request, the
  // view's rows while they want them (once a second; at once when stale).
  void serve_board(uint64_t now);
  // The achieved rate and changed slots per tick, over the last second.
  void update_rates(uint64_t now);
  void save_state();
  void load_state(uint64_t now);
  void do_reload();
  nlohmann::json build_status() const;  // status.cpp, with rebuild_view
  Target target_of(const FaultRecord& f);

  ServiceOptions opts_;
  Config config_;
  std::optional<InstanceLock> lock_;
  std::unique_ptr<Probe> probe_;
  CachedProcInfo infos_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<RunqBlameReader> runq_blame_;  // null when the probe does not charge waits per CPU
  std::unique_ptr<NetEndpointReader> net_endpoints_;  // the network detectors' remote endpoints
  std::unique_ptr<NetDropReasonReader> net_drop_reasons_;  // net_drops' reasons, named from the kernel's BTF
  ErrorDetectorNames error_detectors_;  // kernel_error's detector names, from the kernel's BTF
  std::unique_ptr<CgroupMemoryBudget> memory_budget_;  // memory_leak's forecast
  std::unique_ptr<CgroupCpuQuota> cpu_quota_;          // runq_starvation: waits a quota caused
  EventBatch events_;
  std::unique_ptr<HardwareInputs> hw_inputs_;  // [hardware]: source switches, hwmon scans
  // host_pressure: PSI (read at every tick, triggers wake the loop) and utilisation (once a second).
  PressureInputs pressure_;
  // host_pressure rules that name a cgroup v2 group: its own PSI files.
  std::unique_ptr<CgroupPressureSet> cgroup_pressure_;
  HostSampler util_sampler_;
  LogWatchSet logwatch_;  // [[logwatch]]: app_errors' files, read at every tick
  uint64_t last_util_ns_ = 0;
  bool pressure_wanted_ = false;  // an enabled host_pressure rule: read PSI, wake on its triggers
  std::vector<SlotChange> changed_;  // this tick's changed slots (copies: the probe's)
  FILE* events_out_ = nullptr;
  bool own_events_out_ = false;
  FILE* exits_out_ = nullptr;  // --exits-json
  // Ring-buffer records received, by kind (status "events_received"): lets a
  // benchmark count what the probe delivered, clean exits included.
  uint64_t exits_received_ = 0, signals_received_ = 0, ooms_received_ = 0, hangs_received_ = 0;
  uint64_t kernel_errors_received_ = 0;

  // Handling.
  MonotonicClock clock_;
  std::unique_ptr<PidfdSignaller> signaller_impl_;
  std::unique_ptr<Signaller> signaller_;
  std::unique_ptr<ThrottleBackend> throttle_;
  std::string throttle_why_;
  std::unique_ptr<SafetyGuard> safety_;
  std::unique_ptr<RespawnRegistry> respawn_;
  std::unique_ptr<StopRecord> stops_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<SystemdControl> systemd_;
  std::unique_ptr<UnitThrottle> unit_throttle_;  // under systemd: throttles of units' processes
  std::unique_ptr<CriuBackend> criu_;
  CriuStatus criu_status_;
  std::unique_ptr<ActionWorker> worker_;  // criu dumps, systemctl: off the loop
  std::unique_ptr<RealSpawner> spawner_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<RealActuator> actuator_;
  std::unique_ptr<Handler> handler_;
  std::set<std::pair<ProcKey, std::string>> seen_;  // (process, comm) already offered to actuator_->remember()

  // Faces.
  std::unique_ptr<Alerter> alerter_;
  std::unique_ptr<SocketServer> server_;
  std::unique_ptr<MetricsServer> metrics_;
  HostSampler host_sampler_;  // sampled once a second (update_rates): the view's host line is over the last second
  HostStats host_stats_;
  StatusBoard board_;  // status and view, from the sampling thread to the socket server's (status.h)
  Counters counters_;
  std::vector<pollfd> poll_fds_;  // wait_for_events()' set, kept to spare an allocation a tick
  std::vector<uint64_t> tick_cost_ns_;  // the last ticks' CPU time, for the sampler's cost
  static constexpr size_t kBurstChanged = 1000;                  // changed slots in one tick that make a burst
  static constexpr uint64_t kTrimAfterBurstNs = 2'000'000'000ull;  // malloc_trim this long after the last one
  uint64_t trim_at_ns_ = 0;                                        // 0: none due
  uint64_t changed_total_ = 0, last_rate_changed_ = 0;  // slots the probe reported changed, summed over ticks
  double changed_per_tick_ = 0;
  uint64_t ticks_ = 0, faults_ = 0, last_prune_ns_ = 0, last_health_ns_ = 0, last_view_ns_ = 0;
  uint64_t started_ns_ = 0, last_rate_ns_ = 0, last_rate_ticks_ = 0;
  double sample_hz_ = 0;
  std::atomic<uint64_t> records_failed_{0};  // records an exception kept from going out (status)
  std::atomic<uint64_t> ticks_failed_{0};
  bool took_over_ = false;
  size_t adopted_ = 0;
};

}  // namespace fp
