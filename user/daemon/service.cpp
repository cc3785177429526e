#include "daemon/service.h"

#include <malloc.h>
#include <poll.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "act/cgroup.h"
#include "act/cgroup_ops.h"
#include "act/signal_throttle.h"
#include "act/spawn.h"
#include "daemon/notify.h"
#include "daemon/state_store.h"
#include "report/snapshot_report.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/guard.h"
#include "util/text.h"

namespace fp {
namespace {

HostInfo host_info() {
  HostInfo h;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  h.ncpus = n > 0 ? unsigned(n) : 1;
  h.page_size = uint64_t(sysconf(_SC_PAGESIZE));
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemTotal:") {
      h.mem_total_bytes = kb * 1024;
      break;
    }
    in.ignore(256, '\n');
  }
  return h;
}

// Events that cannot wait for the next tick: a crash, an OOM kill, a hang, a kernel error report.
bool urgent(const EventBatch& b) {
  if (!b.signals.empty() || !b.ooms.empty() || !b.hangs.empty() || !b.kernel_errors.empty()) return true;
  for (const auto& e : b.exits)
    if (e.exit_code != 0) return true;
  return false;
}

int supervisor_severity(SupervisorEvent::Kind k) {
  switch (k) {
    case SupervisorEvent::Kind::CrashLoopTripped:
      return LOG_CRIT;
    case SupervisorEvent::Kind::StartFailed:
    case SupervisorEvent::Kind::RestoreFailed:
    case SupervisorEvent::Kind::CheckpointFailed:
      return LOG_ERR;
    case SupervisorEvent::Kind::Exited:
      return LOG_WARNING;
    default:
      return LOG_INFO;
  }
}

}  // namespace

// Fills in a fault's target from what the daemon knows about the process.
class Service::Resolver : public TargetResolver {
 public:
  explicit Resolver(Service& s) : s_(s) {}
  Target resolve(const FaultRecord& f) override { return s_.target_of(f); }

 private:
  Service& s_;
};

Result<std::unique_ptr<Service>> Service::create(const ServiceOptions& opts, int* exit_code) {
  std::unique_ptr<Service> s(new Service());
  s->opts_ = opts;
  *exit_code = 2;
  auto cfg = load_service_config(opts);
  if (!cfg) return cfg.error();
  s->config_ = std::move(cfg).value();
  const DaemonConfig& dc = s->config_.daemon;

  *exit_code = 1;
  auto lock = InstanceLock::acquire(dc.lock_path);
  if (!lock) return lock.error();
  s->lock_.emplace(std::move(lock).value());

  if (!opts.events_json.empty()) {
    if (opts.events_json == "-") {
      s->events_out_ = stdout;
    } else {
      s->events_out_ = std::fopen(opts.events_json.c_str(), "a");
      if (!s->events_out_) {
        *exit_code = 2;
        return Error::from_errno(errno, "cannot open the event stream file " + opts.events_json);
      }
      s->own_events_out_ = true;
    }
  }
  if (!opts.exits_json.empty()) {
    s->exits_out_ = std::fopen(opts.exits_json.c_str(), "a");
    if (!s->exits_out_) {
      *exit_code = 2;
      return Error::from_errno(errno, "cannot open the exits file " + opts.exits_json);
    }
  }
  if (!dc.state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dc.state_dir, ec);
    if (ec) return Error{ec.value(), "cannot create the state directory " + dc.state_dir + ": " + ec.message()};
  }

  // CRIU's own start-up check runs before the probe is attached: on kernels
  // its version does not know (CRIU 3.17 on >= 6.13) a child of `criu check`
  // dies of SIGSEGV, and a probe already attached reported that as a crash
  // at every start of the daemon. (A probe taken over from a pin is attached
  // already: then that crash is still seen, with comm "criu".)
  s->worker_ = std::make_unique<ActionWorker>();
  auto runner = std::make_unique<RealCommandRunner>();
  runner->set_cancel(&s->worker_->cancel_flag());  // the worker's shutdown bound ends its command
  s->criu_ = std::make_unique<CriuBackend>(
      [r = runner.get()](const auto& argv, auto timeout, auto* out) { return r->run(argv, timeout, out); });
  s->runner_ = std::move(runner);
  s->criu_status_ = s->criu_->probe();

  ProbeOptions popts;
  popts.force_raw_tp = opts.force_raw_tp;
  popts.raw_tp_hooks = opts.raw_tp_hooks;
  popts.pin_dir = dc.pin_dir;
  popts.max_procs = dc.max_procs;
  // The clock tick charges a task that never switches out (a spinner) its CPU
  // time: at least once per sample, so a window of a few samples does not see
  // a hog's time arrive in 50 ms lumps (a 200 ms window then read 0.75 cores
  // of a full one at some ticks and restarted a cpu_runaway hold). Each tick
  // costs ~0.7 us per CPU: 100 Hz is < 0.01 % of a CPU.
  const uint64_t interval_ms = uint64_t(s->config_.sample_interval.count()) / 1'000'000;
  popts.cpu_tick_ms = uint32_t(std::clamp<uint64_t>(interval_ms, 10, 50));
  auto probe = Probe::start(popts);
  if (!probe) return probe.error();
  s->probe_ = std::move(probe).value();
  s->took_over_ = s->probe_->took_over();
  s->engine_ = std::make_unique<Engine>(s->config_, host_info(), s->infos_, uint32_t(getpid()));
  if (s->probe_->runq_blame_fd() >= 0) {
    s->runq_blame_ = std::make_unique<RunqBlameReader>(s->probe_->runq_blame_fd());
    s->engine_->set_runq_blame(s->runq_blame_.get());
  } else {
    spdlog::info("run-queue blame unavailable ({}): runq_starvation blames the top CPU consumer",
                 s->probe_->runq_blame_reason());
  }
  if (s->probe_->net_endpoints_fd() >= 0) {
    s->net_endpoints_ = std::make_unique<NetEndpointReader>(s->probe_->net_endpoints_fd());
    s->engine_->set_net_endpoints(s->net_endpoints_.get());
  }
  if (s->probe_->net_drop_reasons_fd() >= 0) {
    s->net_drop_reasons_ = std::make_unique<NetDropReasonReader>(s->probe_->net_drop_reasons_fd(),
                                                                 kernel_drop_reason_names());
    s->engine_->set_net_drop_reasons(s->net_drop_reasons_.get());
  }
  s->error_detectors_ = kernel_error_detector_names();
  s->engine_->set_error_detector_names(&s->error_detectors_);
  s->memory_budget_ = std::make_unique<CgroupMemoryBudget>(detect_cgroups(), real_cgroup_ops());
  s->engine_->set_memory_budget(s->memory_budget_.get());
  s->cpu_quota_ = std::make_unique<CgroupCpuQuota>(detect_cgroups(), real_cgroup_ops());
  s->engine_->set_cpu_quota(s->cpu_quota_.get());
  s->hw_inputs_ = std::make_unique<HardwareInputs>(s->config_.hardware);
  s->pressure_.arm();
  s->engine_->set_pressure(&s->pressure_.now());
  s->cgroup_pressure_ = std::make_unique<CgroupPressureSet>(detect_cgroups().v2_root);
  s->cgroup_pressure_->set_rules(s->config_.rules);
  s->engine_->set_cgroup_pressure(s->cgroup_pressure_.get());
  s->logwatch_.set_rules(s->config_.rules);
  s->engine_->set_logs(&s->logwatch_);
  for (const auto& hs : s->probe_->hardware_sources())
    spdlog::info("hardware source {} ({}): {}{}", hs.name, hs.tracepoint, hs.available ? "available" : "unavailable",
                 hs.reason.empty() ? "" : " -- " + hs.reason);
  s->started_ns_ = monotonic_now_ns();
  s->load_state(s->started_ns_);

  if (auto a = s->start_actions(exit_code); !a) return a.error();

  auto alerter = Alerter::create(dc, s->clock_);
  if (!alerter) {
    *exit_code = 2;
    return alerter.error();
  }
  s->alerter_ = std::move(alerter).value();

  if (!dc.socket_path.empty()) {
    ServerOptions so;
    so.path = dc.socket_path;
    so.group = dc.socket_group;
    auto srv = SocketServer::start(so, *s);
    if (!srv) return srv.error();
    s->server_ = std::move(srv).value();
  }
  if (!dc.metrics_listen.empty()) {
    s->metrics_ = std::make_unique<MetricsServer>();
    if (auto m = s->metrics_->start(dc.metrics_listen); !m) return m.error();
  }
  *exit_code = 0;
  return s;
}

Result<void> Service::start_actions(int* exit_code) {
  (void)exit_code;
  const DaemonConfig& dc = config_.daemon;
  signaller_impl_ = std::make_unique<PidfdSignaller>();
  struct Adapter : Signaller {
    explicit Adapter(PidfdSignaller& p) : p_(p) {}
    Result<void> send(const ProcKey& key, int sig) override { return p_.send(key, sig); }
    PidfdSignaller& p_;
  };
  signaller_ = std::make_unique<Adapter>(*signaller_impl_);
  // A predecessor killed while it froze a tree (kill_tree) left those
  // processes stopped: continue them before anything else is done.
  stops_ = std::make_unique<StopRecord>(dc.state_dir.empty() ? "" : dc.state_dir + "/stopped.json");
  stops_->continue_recorded([this](const ProcKey& k, int sig) { return signaller_impl_->send(k, sig); });
  const std::string throttle_state = dc.state_dir.empty() ? "" : dc.state_dir + "/throttles.json";
  if (dc.throttle_backend == "signal") {
    throttle_why_ = "throttle_backend = \"signal\" in the config";
    throttle_ = std::make_unique<SignalDutyCycle>(*signaller_, clock_, 1'000'000'000ull, throttle_state);
    spdlog::info("throttle backend: signal ({})", throttle_why_);
  } else {
    throttle_ = choose_throttle_backend(detect_cgroups(), *signaller_, clock_, &throttle_why_, throttle_state);
  }
  safety_ = std::make_unique<SafetyGuard>(getpid(), "/proc", config_.protected_comms);
  respawn_ = std::make_unique<RespawnRegistry>();
  // 30 s per systemctl call, not 10: they run on the action worker (the loop
  // does not wait), and on a loaded host or under emulation a `systemctl
  // show` alone was seen to take more than 10 s.
  systemd_ = std::make_unique<SystemdControl>(*runner_, "/run/systemd/system", std::chrono::seconds(30));
  // A unit's process is throttled through systemd, which owns the unit's cgroups.
  if (systemd_->available())
    unit_throttle_ = std::make_unique<UnitThrottle>(
        *systemd_, dc.state_dir.empty() ? "" : dc.state_dir + "/unit-throttles.json", default_io_devices());
  // A unit's processes carry INVOCATION_ID: then services and respawns go to
  // systemd (transient units), so they do not inherit this unit's sandbox.
  const bool under_systemd = std::getenv("INVOCATION_ID") != nullptr && systemd_->available();
  if (under_systemd)
    spawner_ = std::make_unique<SystemdSpawner>(*systemd_, *runner_);
  else
    spawner_ = std::make_unique<RealSpawner>();
  SupervisorOptions so;
  so.log_dir = dc.log_dir;
  so.start_of = [](pid_t pid) -> uint64_t {
    auto s = process_start_ns(pid);
    return s ? *s : 0;
  };
  so.criu = criu_status_.available ? criu_.get() : nullptr;
  so.worker = worker_.get();
  so.on_event = [this](const SupervisorEvent& e) {
    guarded("service event", [&] { emit_service_event(e); }, &records_failed_);
  };
  supervisor_ = std::make_unique<Supervisor>(clock_, *spawner_, so);

  RealActuatorDeps deps;
  deps.throttle = throttle_.get();
  deps.throttle_why = throttle_why_;
  deps.safety = safety_.get();
  deps.supervisor = supervisor_.get();
  deps.systemd = systemd_.get();
  deps.respawn = respawn_.get();
  deps.stops = stops_.get();
  deps.unit_throttle = unit_throttle_.get();
  deps.worker = worker_.get();
  deps.under_systemd = under_systemd;
  deps.ancestors = [this](uint32_t pid) {
    std::vector<uint32_t> out;
    if (const ProcState* s = engine_->table().find_pid(pid))
      for (const ProcState* a : engine_->table().ancestors(*s)) out.push_back(a->key.tgid);
    return out;
  };
  deps.probe_key = [this](uint32_t pid) -> std::optional<ProcKey> {
    if (const ProcState* s = engine_->table().find_pid(pid); s && !s->exited) return s->key;
    return std::nullopt;
  };
  actuator_ = std::make_unique<RealActuator>(std::move(deps));
  handler_ = std::make_unique<Handler>(
      config_, *actuator_,
      [this](const Target& t) {
        return actuator_->alive(t.key) ? safety_->refuse(t.key, t.comm) : safety_->refuse_gone(t.key, t.comm);
      },
      opts_.dry_run);
  // Throttles a previous run left in place are undone by this run.
  std::vector<ProcKey> left = throttle_ ? throttle_->throttled_keys() : std::vector<ProcKey>{};
  if (unit_throttle_)
    for (const ProcKey& k : unit_throttle_->keys()) left.push_back(k);
  for (const ProcKey& k : left) {
    Target t;
    t.key = k;
    const ProcInfo& pi = infos_.info(k);
    t.comm = pi.comm;
    t.exe = pi.exe;
    t.cgroup = pi.cgroup;
    t.uid = pi.uid;
    set_unit(t, pi.cgroup);
    handler_->adopt_throttle(t, monotonic_now_ns());
  }
  spdlog::info("handling: {} policies, {} services, throttle backend {}{}", config_.policies.size(),
               config_.services.size(), throttle_ ? throttle_->name() : "none",
               throttle_why_.empty() ? "" : " (" + throttle_why_ + ")");
  return {};
}

Service::~Service() {
  // Each step on its own: one that fails must not skip the others (or
  // std::terminate the daemon out of a destructor).
  uint64_t now = monotonic_now_ns();
  // First: its jobs use what is destroyed below (the supervisor, criu, systemd).
  if (worker_) guarded("shutdown: action worker", [&] { worker_->shutdown(); worker_->drain(); });
  HandlerOutput out;
  if (handler_) guarded("shutdown: undoing throttles", [&] { out = handler_->shutdown(now); });
  for (const auto& a : out.actions) guarded("shutdown: action record", [&] { emit_action(a); });
  if (supervisor_) guarded("shutdown: stopping services", [&] { supervisor_->stop_all(); });
  guarded("shutdown: saving the open faults", [&] { save_state(); });
  if (metrics_) guarded("shutdown: metrics", [&] { metrics_->stop(); });
  if (server_) guarded("shutdown: socket", [&] { server_->stop(); });
  if (own_events_out_ && events_out_) std::fclose(events_out_);
  if (exits_out_) std::fclose(exits_out_);
}

// Counts the ring-buffer records of this tick and, with --exits-json, writes
// each exit's final counters (for the completeness and accuracy benchmarks;
// clean exits are not fault records, so the event stream does not carry them).
void Service::count_and_log_events() {
  exits_received_ += events_.exits.size();
  signals_received_ += events_.signals.size();
  ooms_received_ += events_.ooms.size();
  hangs_received_ += events_.hangs.size();
  kernel_errors_received_ += events_.kernel_errors.size();
  if (!exits_out_ || events_.exits.empty()) return;
  for (const auto& e : events_.exits) {
    const fp_proc& p = e.final;
    int64_t rss_pages = 0;
    for (auto v : p.rss_pages) rss_pages += v > 0 ? v : 0;
    nlohmann::ordered_json j = {{"ts_ns", e.ts_ns},
                                {"pid", p.tgid},
                                {"ppid", p.ppid},
                                {"start_ns", p.start_ns},
                                {"comm", std::string(p.comm, strnlen(p.comm, FP_COMM_LEN))},
                                {"exit_code", e.exit_code},
                                {"cpu_ns", p.cpu_ns},
                                {"nvcsw", p.nvcsw},
                                {"nivcsw", p.nivcsw},
                                {"forks", p.forks},
                                {"execs", p.execs},
                                {"io_read_bytes", p.io_read_bytes},
                                {"io_write_bytes", p.io_write_bytes},
                                {"io_cancelled_write_bytes", p.io_cancelled_write_bytes},
                                {"io_submit_read_bytes", p.io_submit_read_bytes},
                                {"io_submit_write_bytes", p.io_submit_write_bytes},
                                {"io_read_reqs", p.io_read_reqs},
                                {"io_write_reqs", p.io_write_reqs},
                                {"dirty_throttle_ns", p.dirty_throttle_ns},
                                {"net_connects", p.net_connects},
                                {"net_connect_failures", p.net_connect_failures},
                                {"net_retransmits", p.net_retransmits},
                                {"net_segs_out", p.net_segs_out},
                                {"net_resets_sent", p.net_resets_sent},
                                {"net_resets_received", p.net_resets_received},
                                {"net_rcvq_overflows", p.net_rcvq_overflows},
                                {"net_drops", p.net_drops},
                                {"kernel_errors", p.kernel_errors},
                                {"page_faults", p.page_faults},
                                {"rss_pages", rss_pages}};
    std::string text = safe_dump(j);
    std::fputs(text.c_str(), exits_out_);
    std::fputc('\n', exits_out_);
  }
  std::fflush(exits_out_);
}

void Service::publish(const nlohmann::ordered_json& line) {
  std::string text = safe_dump(line);
  if (events_out_) {
    std::fputs(text.c_str(), events_out_);
    std::fputc('\n', events_out_);
    std::fflush(events_out_);
  }
  if (server_) server_->publish_event(text);
}

void Service::emit_fault(const FaultRecord& r) {
  bool open = r.kind == FaultRecord::Kind::Fault;
  const char* cls = fault_class_name(r.cls);
  if (open) {
    faults_++;
    counters_.faults_by_class[cls]++;
  } else {
    counters_.resolved_by_class[cls]++;
  }
  // Written ahead of the line: a daemon killed right after telling the world
  // of a fault must find it open at its restart (else it tells it twice).
  // The engine's open set already has this record (it decided it before
  // calling here); the file is small and written without fsync.
  guarded("saving the open faults", [&] { save_state(); });
  // The event stream first: its followers' latency need not include the log and syslog writes.
  publish(fault_to_json(r, realtime_now_ns()));
  if (open) {
    spdlog::log(r.severity == Severity::Critical ? spdlog::level::critical : spdlog::level::warn,
                "fault {} rule={} pid={} comm={} evidence={}", cls, r.rule, r.culprit.tgid, r.comm,
                safe_dump(r.evidence));
    alerter_->fault_opened(r);
  } else {
    spdlog::info("resolved {} rule={} pid={} comm={}", cls, r.rule, r.culprit.tgid, r.comm);
    alerter_->fault_resolved(r);
  }
}

void Service::emit_action(const ActionRecord& r) {
  counters_.actions[std::string(action_type_name(r.type)) + "/" + action_result_name(r.outcome.result)]++;
  auto level = r.outcome.result == ActionResult::Failed ? spdlog::level::err : spdlog::level::info;
  spdlog::log(level, "action {} {} on {} pid={} ({}): {}", action_type_name(r.type),
              action_result_name(r.outcome.result), fault_class_name(r.cls), r.target.key.tgid, r.target.comm,
              r.outcome.detail);
  if (alerter_) alerter_->action(r);
  publish(action_to_json(r, realtime_now_ns()));
}

void Service::emit_recovery(const RecoveryRecord& r) {
  spdlog::info("recovery {} pid={} after {}: {} {}", fault_class_name(r.cls), r.target.key.tgid, r.step,
               r.recovered ? "recovered" : "NOT recovered", r.detail);
  RecoveryAlert a;
  a.cls = r.cls;
  a.rule = r.rule;
  a.pid = r.target.key.tgid;
  a.comm = r.target.comm;
  a.recovered = r.recovered;
  a.detail = r.detail;
  if (alerter_) alerter_->recovery(a);
  publish(recovery_to_json(r, realtime_now_ns()));
}

void Service::emit_service_event(const SupervisorEvent& e) {
  int sev = supervisor_severity(e.kind);
  std::string text = describe(e);
  spdlog::log(sev <= LOG_CRIT ? spdlog::level::critical : sev <= LOG_ERR ? spdlog::level::err : spdlog::level::info,
              "{}", text);
  if (alerter_ && (sev <= LOG_WARNING || e.kind == SupervisorEvent::Kind::Started))
    alerter_->service_event(e.service, sev, text);
  nlohmann::ordered_json j;
  j["time"] = rfc3339_ms(realtime_now_ns());
  j["kind"] = "service";
  j["service"] = e.service;
  j["event"] = supervisor_event_name(e.kind);
  j["pid"] = e.pid;
  j["mono_s"] = double(monotonic_now_ns()) / 1e9;
  if (e.kind == SupervisorEvent::Kind::Restarting) j["delay_ms"] = e.delay_ms;
  if (!e.detail.empty()) j["detail"] = e.detail;
  if (!e.restore_source.empty()) j["restore_source"] = e.restore_source;  // which rung a restore start took
  if (e.kind == SupervisorEvent::Kind::Started && supervisor_) {
    for (const auto& s : supervisor_->status())
      if (s.name == e.service) j["n"] = s.restarts + 1;
  }
  publish(j);
}

Target Service::target_of(const FaultRecord& f) {
  Target t;
  t.key = f.culprit;
  t.comm = f.comm;
  t.cgroup = f.cgroup;
  // As it is now (the cache may hold what /proc said before an exec), while it lives.
  ProcInfo pi = actuator_->alive(f.culprit) ? infos_.fresh(f.culprit.tgid) : infos_.info(f.culprit);
  if (pi.found) {
    t.exe = pi.exe;
    t.uid = pi.uid;
    if (!pi.cgroup.empty()) t.cgroup = pi.cgroup;
    if (!pi.comm.empty()) t.comm = pi.comm;  // a prctl rename the probe did not see
  }
  set_unit(t, t.cgroup);
  if (auto svc = actuator_->service_of(t)) t.service = *svc;
  return t;
}

// A process a policy could act on is offered to the actuator once, while it
// is alive, so that a respawn after its crash knows its argv/cwd/env/user.
void Service::remember_new_processes() {
  if (config_.policies.empty()) return;
  for (const SlotChange& c : changed_) {
    const fp_proc* p = c.proc;
    if (p->tgid == 0) continue;
    ProcKey k = key_of(*p);
    // Keyed with the name too: a process first seen before its exec gets
    // another look under its new name.
    std::string comm(p->comm, strnlen(p->comm, FP_COMM_LEN));
    if (!seen_.emplace(k, comm).second) continue;
    ProcInfo pi = infos_.fresh(k.tgid);
    if (!pi.found) continue;
    Target t;
    t.key = k;
    t.comm = pi.comm.empty() ? comm : pi.comm;
    t.exe = pi.exe;
    t.cgroup = pi.cgroup;
    set_unit(t, pi.cgroup);
    t.uid = pi.uid;
    if (handler_->policy_for(t)) actuator_->remember(t);
  }
  // Forget the processes the table let go of, so this holds the live ones
  // only (it held up to 100,000 entries, ~10 MB, before it was cleared).
  for (const ProcKey& k : engine_->table().removed())
    for (auto it = seen_.lower_bound({k, std::string()}); it != seen_.end() && it->first == k;) it = seen_.erase(it);
  if (seen_.size() > 100000) seen_.clear();  // bounded anyway; a re-offer is harmless
}

void Service::tick(uint64_t now) {
  uint64_t cpu0 = thread_cpu_ns();
  // Owners for sockets that events waited for (a .bss read when none wait);
  // before the refresh, so what a walk charged is read this tick.
  probe_->resolve_net_owners_if_due(now);
  // Always consume: clean exits are submitted without a wake-up, and the
  // kernel only wakes a reader that has caught up, so poll() alone would
  // stall behind the first unconsumed record.
  probe_->drain(events_);
  const auto& changed = probe_->refresh();
  const auto& copies = probe_->changed_copies();
  changed_.clear();
  for (size_t i = 0; i < changed.size(); i++) changed_.push_back({changed[i], &copies[i]});
  changed_total_ += changed_.size();
  // A burst (thousands of processes changed at once: a start-up, a poke of
  // every idle process) leaves its temporaries' pages free inside the heap:
  // they go back to the kernel once the windows it moved have settled,
  // instead of at the next health line (once a minute).
  if (changed_.size() >= kBurstChanged) trim_at_ns_ = now + kTrimAfterBurstNs;
  hw_inputs_->prepare(now, events_);
  read_pressure(now);
  if (!logwatch_.empty()) guarded("logwatch", [&] { logwatch_.read(); });
  // Each record goes out as soon as its rule decided it: a crash does not
  // wait for the threshold detectors.
  // One record that cannot be written costs that record, not the tick.
  auto records = engine_->tick(now, changed_, events_, [this](const FaultRecord& r) {
    guarded("fault record", [&] { emit_fault(r); }, &records_failed_);
  });
  count_and_log_events();
  events_.clear();

  remember_new_processes();
  actuator_->note_open_faults(engine_->open_faults());
  worker_->drain();  // what finished off the loop (a criu dump, a systemctl call) lands before the supervisor's tick
  actuator_->tick(now);
  Resolver resolver(*this);
  auto out = handler_->on_tick(now, records, engine_->open_faults(), resolver);
  // A recovery verdict explains the escalation that follows it at the same tick.
  for (const auto& r : out.recoveries) guarded("recovery record", [&] { emit_recovery(r); }, &records_failed_);
  for (const auto& a : out.actions) guarded("action record", [&] { emit_action(a); }, &records_failed_);
  alerter_->tick(now);

  ticks_++;
  if (now - last_prune_ns_ >= 10'000'000'000ull) {
    infos_.prune();
    last_prune_ns_ = now;
  }
  uint64_t cost = thread_cpu_ns() - cpu0;
  tick_cost_ns_.push_back(cost);
  if (tick_cost_ns_.size() > 1000) tick_cost_ns_.erase(tick_cost_ns_.begin(), tick_cost_ns_.begin() + 500);
  if (now - last_rate_ns_ >= 1'000'000'000ull) update_rates(now);
  serve_board(now);
  if (trim_at_ns_ != 0 && now >= trim_at_ns_) {
    malloc_trim(0);
    trim_at_ns_ = 0;
  }
  if (now - last_health_ns_ >= 60'000'000'000ull) {
    uint64_t drops = 0;
    for (auto d : probe_->drops()) drops += d;
    spdlog::info("health: {} ticks, {} processes tracked, {} faults opened, {} probe drops", ticks_,
                 engine_->table().size(), faults_, drops);
    last_health_ns_ = now;
    // Hand back the free pages inside the heap (processes that left, views
    // built and dropped): malloc only returns the top of the heap by itself.
    malloc_trim(0);
  }
}

// Only for enabled host_pressure rules: three small reads a tick, and
// /proc/stat, meminfo and diskstats once a second (the CPU's busy share
// needs the jiffies of a second to mean something).
void Service::read_pressure(uint64_t now) {
  pressure_wanted_ = std::any_of(config_.rules.begin(), config_.rules.end(), [](const RuleConfig& r) {
    return r.enabled && r.cls == FaultClass::HostPressure;
  });
  if (!pressure_wanted_) return;
  pressure_.read(now);
  cgroup_pressure_->read(now);
  if (now - last_util_ns_ < 1'000'000'000ull) return;
  const bool first = last_util_ns_ == 0;
  last_util_ns_ = now;
  HostStats h = util_sampler_.sample(now);
  if (!first)  // the first reading has no previous one to take rates from
    pressure_.set_util(host_util(h.cpu_pct, h.mem_total_bytes, h.mem_available_bytes, h.io_read_bps, h.io_write_bps));
}

// One poll() for everything that can end the wait: the ring buffer's epoll
// fd, the status board's (a client waits), PSI triggers; then a drain of the
// ring (no syscall). ring_buffer__poll() could wait on the ring only.
Service::Woken Service::wait_for_events(std::chrono::milliseconds wait) {
  std::vector<pollfd>& fds = poll_fds_;
  fds.clear();
  fds.push_back({probe_->event_fd(), POLLIN, 0});
  if (board_.wake_fd() >= 0) fds.push_back({board_.wake_fd(), POLLIN, 0});
  const size_t first_trigger = fds.size();
  if (pressure_wanted_) {  // the host's, then the watched groups'
    for (int fd : pressure_.trigger_fds()) fds.push_back({fd, POLLPRI, 0});
    for (int fd : cgroup_pressure_->trigger_fds()) fds.push_back({fd, POLLPRI, 0});
  }
  Woken woken;
  if (::poll(fds.data(), fds.size(), int(wait.count())) > 0) {
    if (first_trigger > 1 && (fds[1].revents & POLLIN)) {
      board_.clear_wake();
      woken.client = true;
    }
    for (size_t i = first_trigger; i < fds.size(); ++i) {
      const bool error = (fds[i].revents & (POLLERR | POLLNVAL)) != 0;
      if (!error && !(fds[i].revents & POLLPRI)) continue;
      if (!cgroup_pressure_->fired(fds[i].fd, error)) pressure_.fired(fds[i].fd, error);
      woken.stalled = woken.stalled || !error;
    }
  }
  probe_->drain(events_);
  return woken;
}

// The open set is written whenever it changes (state_store.h).
void Service::save_state() {
  if (config_.daemon.state_dir.empty() || !engine_) return;
  save_open_faults(config_.daemon.state_dir, engine_->open_faults());
}

void Service::load_state(uint64_t now) {
  if (config_.daemon.state_dir.empty()) return;
  adopted_ = engine_->adopt_open_faults(load_open_faults(config_.daemon.state_dir), now);
  if (adopted_) spdlog::info("took over {} open faults from the previous run", adopted_);
}

void Service::do_reload() {
  if (opts_.config_path.empty()) {
    spdlog::info("SIGHUP: no config file, keeping the built-in defaults");
    return;
  }
  auto c = load_service_config(opts_);
  if (!c) {
    spdlog::error("SIGHUP: keeping the old configuration: {}", c.error().message);
    return;
  }
  Config next = std::move(c).value();
  if (next.daemon.socket_path != config_.daemon.socket_path || next.daemon.pin_dir != config_.daemon.pin_dir ||
      next.daemon.lock_path != config_.daemon.lock_path || next.daemon.metrics_listen != config_.daemon.metrics_listen)
    spdlog::warn("SIGHUP: socket, pin_dir, lock_path and metrics_listen changes take effect at the next start");
  if (auto r = alerter_->reconfigure(next.daemon); !r)
    spdlog::error("SIGHUP: syslog settings kept: {}", r.error().message);
  next.daemon.socket_path = config_.daemon.socket_path;
  next.daemon.pin_dir = config_.daemon.pin_dir;
  next.daemon.lock_path = config_.daemon.lock_path;
  next.daemon.metrics_listen = config_.daemon.metrics_listen;
  config_ = std::move(next);
  engine_->reload(config_);  // resolved records of removed rules come out with the next tick
  cgroup_pressure_->set_rules(config_.rules);
  logwatch_.set_rules(config_.rules);
  hw_inputs_->reconfigure(config_.hardware);
  safety_->set_protected(config_.protected_comms);
  handler_->reload(config_);
  supervisor_->configure(config_.services);
  spdlog::info("SIGHUP: reloaded {} ({} rules, {} policies, {} services)", opts_.config_path, config_.rules.size(),
               config_.policies.size(), config_.services.size());
}

int Service::run(std::atomic<bool>& stop, std::atomic<bool>& reload) {
  const uint64_t period = uint64_t(config_.sample_interval.count());
  supervisor_->configure(config_.services);
  // (not "probe attached": that line, below, says the first view is ready)
  spdlog::info("faultprobed: probe {}, {} rules, sampling every {}{}", took_over_ ? "taken over" : "loaded",
               config_.rules.size(), format_duration(config_.sample_interval), opts_.dry_run ? " (dry run)" : "");
  guarded("the first tick", [&] { tick(monotonic_now_ns()); });
  guarded("the first view", [&] { rebuild_view(monotonic_now_ns()); });
  // The e2e tests and scripts wait for this line: after the first view, so
  // that a status asked for right after it is whole (not the empty object).
  spdlog::info("faultprobed: probe attached");
  malloc_trim(0);  // what loading the probe (the kernel's BTF, parsed twice) left free
  sd::ready(std::string("monitoring: ") + std::to_string(engine_->table().size()) + " processes, " +
            std::to_string(config_.rules.size()) + " rules, " + std::to_string(config_.policies.size()) +
            " policies");
  sd::Watchdog watchdog;
  watchdog.install_keepalive();
  uint64_t next = monotonic_now_ns() + period;
  while (!stop.load()) {
    if (reload.exchange(false)) {
      sd::status("reloading " + opts_.config_path);
      guarded("SIGHUP reload", [&] { do_reload(); });
      sd::status("reloaded " + opts_.config_path);
    }
    uint64_t now = monotonic_now_ns();
    if (now < next) {
      // Sleep in the ring buffer until the tick is due; a crash/OOM/hang event
      // or a PSI trigger wakes us and is handled at once instead of at the next tick.
      uint64_t until = std::min(next, throttle_ ? throttle_->next_deadline_ns() : next);
      auto wait = std::chrono::milliseconds((std::max(until, now) - now + 999'999) / 1'000'000);
      const Woken woken = wait_for_events(wait);
      if (!urgent(events_) && !woken.stalled && monotonic_now_ns() < next) {
        if (throttle_ && throttle_->next_deadline_ns() <= monotonic_now_ns())
          guarded("throttle duty cycle", [&] { throttle_->tick(monotonic_now_ns()); });
        if (woken.client) guarded("status", [&] { serve_board(monotonic_now_ns()); });
        continue;
      }
    }  // tick() drains whatever poll() did not
    now = monotonic_now_ns();
    // A bug must cost one tick, not the monitoring of the host.
    if (!guarded("tick", [&] { tick(now); }, &ticks_failed_)) events_.clear();
    watchdog.ping_if_due(now);
    if (now >= next) next += period;
    if (next + period < now) next = now + period;  // fell behind (suspend, stall): do not burst
  }
  sd::stopping();
  spdlog::info("faultprobed: stopping after {} ticks{}", ticks_,
               config_.daemon.pin_dir.empty() ? "" : "; the probe stays pinned in " + config_.daemon.pin_dir +
                                                         " (faultprobed --detach-probe removes it)");
  return 0;
}

}  // namespace fp
