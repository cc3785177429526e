#include "daemon/service.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
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
#include "daemon/limits_status.h"
#include "daemon/notify.h"
#include "report/snapshot_report.h"
#include "util/duration.h"
#include "util/guard.h"
#include "util/memory_usage.h"
#include "util/text.h"

namespace fp {
namespace {

uint64_t realtime_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

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

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// Events that cannot wait for the next tick: a crash, an OOM kill, a hang.
bool urgent(const EventBatch& b) {
  if (!b.signals.empty() || !b.ooms.empty() || !b.hangs.empty()) return true;
  for (const auto& e : b.exits)
    if (e.exit_code != 0) return true;
  return false;
}

// Writes `text` to `path` atomically (tmp + rename), readable by root only:
// it names other users' processes.
bool write_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = ::fchmod(fd, 0600) == 0;  // a .tmp left by an older daemon keeps its mode otherwise
  for (size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += size_t(n);
  }
  ok = ::close(fd) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

double percentile_us(std::vector<uint64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return double(v[std::min(v.size() - 1, size_t(q * double(v.size())))]) / 1000.0;
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

Result<void> check_config_file_safe(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Error::from_errno(errno, "cannot read the config file " + path);
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, path + " is not a regular file"};
  if (st.st_mode & S_IWOTH)
    return Error{EPERM, path + " is world-writable: refusing a config that decides what faultprobed may kill "
                               "(chmod o-w " + path + ")"};
  if ((st.st_mode & S_IWGRP) && st.st_gid != 0)
    return Error{EPERM, path + " is writable by group " + std::to_string(st.st_gid) +
                            ": refusing it (chmod g-w " + path + ")"};
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return Error{EPERM, path + " is owned by uid " + std::to_string(st.st_uid) + ", not root: refusing it"};
  return {};
}

Result<Config> load_service_config(const ServiceOptions& opts) {
  Config cfg;
  if (opts.config_path.empty()) {
    cfg = default_config();
  } else {
    if (auto safe = check_config_file_safe(opts.config_path); !safe) return safe.error();
    auto c = load_config_file(opts.config_path);
    if (!c) return c.error();
    cfg = std::move(c).value();
  }
  if (opts.pin_dir) cfg.daemon.pin_dir = *opts.pin_dir;
  if (opts.lock_path) cfg.daemon.lock_path = *opts.lock_path;
  return cfg;
}

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
  s->memory_budget_ = std::make_unique<CgroupMemoryBudget>(detect_cgroups(), real_cgroup_ops());
  s->engine_->set_memory_budget(s->memory_budget_.get());
  s->hw_inputs_ = std::make_unique<HardwareInputs>(s->config_.hardware);
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
  systemd_ = std::make_unique<SystemdControl>(*runner_);
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
  if (throttle_)
    for (const ProcKey& k : throttle_->throttled_keys()) {
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
  for (const fp_proc* p : changed_) {
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

namespace {
// A client that asked for the view within this time keeps the rows coming
// (`faultprobe top` asks every second).
constexpr uint64_t kViewWantedNs = 5'000'000'000ull;
// A view older than this is rebuilt for a request rather than served.
constexpr uint64_t kViewFreshNs = 1'500'000'000ull;
}  // namespace

void Service::tick(uint64_t now) {
  uint64_t cpu0 = thread_cpu_ns();
  // Always consume: clean exits are submitted without a wake-up, and the
  // kernel only wakes a reader that has caught up, so poll() alone would
  // stall behind the first unconsumed record.
  probe_->drain(events_);
  const auto& changed = probe_->refresh();
  changed_.clear();
  for (uint32_t slot : changed) changed_.push_back(&probe_->slots()[slot]);
  changed_total_ += changed_.size();
  hw_inputs_->prepare(now, events_);
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
  // Once a second for status; at once when a client waits for a fresh view.
  if (now - last_view_ns_ >= 1'000'000'000ull || (view_wanted(now) && now - view_built_ns_ >= kViewFreshNs))
    rebuild_view(now);
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


bool Service::view_wanted(uint64_t now) const {
  if (metrics_) return true;
  uint64_t asked = view_wanted_ns_.load(std::memory_order_relaxed);
  return asked != 0 && now - std::min(now, asked) < kViewWantedNs;
}

void Service::rebuild_view(uint64_t now) {
  auto v = std::make_shared<DaemonView>();
  v->realtime_ns = realtime_now_ns();
  v->window_ns = 1'000'000'000ull;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  v->hostname = host;
  v->host = host_sampler_.sample(now);
  if (last_rate_ns_ != 0 && now > last_rate_ns_) {
    sample_hz_ = double(ticks_ - last_rate_ticks_) * 1e9 / double(now - last_rate_ns_);
    if (ticks_ > last_rate_ticks_)
      changed_per_tick_ = double(changed_total_ - last_rate_changed_) / double(ticks_ - last_rate_ticks_);
  }
  last_rate_changed_ = changed_total_;
  last_rate_ns_ = now;
  last_rate_ticks_ = ticks_;
  nlohmann::json st = build_status();
  last_view_ns_ = now;
  const bool rows = view_wanted(now);
  if (rows) {
    ProbeHealth& h = v->health;
    h.drops = probe_->drops();
    for (auto d : h.drops) h.drops_total += d;
    h.sample_hz = sample_hz_;
    h.ticks = ticks_;
    h.tick_us_p50 = percentile_us(tick_cost_ns_, 0.5);
    h.tick_us_p99 = percentile_us(tick_cost_ns_, 0.99);
    h.procs_tracked = engine_->table().size();
    h.max_procs = probe_->max_procs();
    h.malformed_events = probe_->malformed_events();
    auto open = engine_->open_faults();
    std::vector<uint32_t> throttled, restarted;
    for (const auto& k : handler_->throttled()) throttled.push_back(k.tgid);
    for (const auto& k : handler_->restarted()) restarted.push_back(k.tgid);
    v->procs = build_rows(engine_->table(), now, v->window_ns, infos_, open, throttled, restarted);
    for (const auto& f : open) v->open_faults.push_back(fault_to_json(f, v->realtime_ns));
    v->counters = counters_;
    v->counters.syslog_sent = alerter_->sent();
    v->counters.syslog_suppressed = alerter_->suppressed();
    v->counters.syslog_forward_failures = alerter_->forward_failures();
    v->status = st;
  }
  {
    std::lock_guard<std::mutex> g(view_mu_);
    status_json_ = std::move(st);
    if (rows) {
      view_ = v;
      ++view_gen_;
      view_built_ns_ = now;
    }
  }
  if (rows) {
    view_cv_.notify_all();
    if (metrics_) metrics_->publish(v);
  }
}

nlohmann::json Service::build_status() const {
  nlohmann::json s;
  s["pid"] = getpid();
  s["version"] = FAULTPROBE_VERSION;
  s["config"] = config_.source;
  s["dry_run"] = opts_.dry_run;
  s["uptime_s"] = double(monotonic_now_ns() - started_ns_) / 1e9;
  s["took_over_probe"] = took_over_;
  s["adopted_open_faults"] = adopted_;
  nlohmann::json hooks = nlohmann::json::array();
  for (const auto& hk : probe_->hooks())
    hooks.push_back({{"name", hk.name},
                     {"mode", attach_mode_name(hk.mode)},
                     {"required", hk.required},
                     {"feeds", hk.feeds},
                     {"reason", hk.reason}});
  s["hooks"] = hooks;
  nlohmann::json hw = nlohmann::json::array();
  for (const auto& hs : probe_->hardware_sources())
    hw.push_back({{"name", hs.name},
                  {"tracepoint", hs.tracepoint},
                  {"class", hs.fault_class},
                  {"available", hs.available},
                  {"mode", hs.mode},
                  {"reason", hs.reason}});
  s["hardware_sources"] = hw;
  s["hardware"] = hw_inputs_->status();
  s["cpu_tick"] = probe_->cpu_tick_attached();
  s["thread_state"] = probe_->thread_task_storage() ? "task_storage" : "hash";
  s["runq_waits_from"] = probe_->runq_from_sched_info() ? "sched_info" : "wakeups";
  s["io_bytes_from"] = probe_->io_bytes_from();
  // how the processes alive at start got their slots: task_iter, or proc (and why)
  s["seed"] = seed_status_json(probe_->seed_status());
  s["runq_blame"] = probe_->runq_blame_fd() >= 0 ? "cpu_runners" : "top_cpu_consumer: " + probe_->runq_blame_reason();
  s["unavailable_counters"] = probe_->unavailable_counters();
  nlohmann::json drops = nlohmann::json::object();
  auto d = probe_->drops();
  for (unsigned i = 0; i < d.size(); ++i) drops[drop_reason_name(i)] = d[i];
  s["drops"] = drops;
  s["events_received"] = {{"exits", exits_received_},
                           {"signals", signals_received_},
                           {"ooms", ooms_received_},
                           {"hangs", hangs_received_}};
  s["maps"] = {{"proc_slots_max", probe_->max_procs()},
               {"proc_slots_high_water", probe_->slots_high_water()},
               {"processes_tracked", engine_->table().size()},
               {"history_bytes", engine_->table().memory_bytes()},
               {"pin_dir", config_.daemon.pin_dir}};
  // Where the daemon's RSS goes: the kernel's and malloc's view, the probe's
  // maps mapped here, the detectors' per-process history, the /proc cache.
  nlohmann::json mem = memory_usage_json(memory_usage());
  auto mapped = probe_->mapped_bytes();
  mem["probe_slots_mapped_bytes"] = mapped.slots;
  mem["probe_ring_mapped_bytes"] = mapped.ring;
  mem["probe_other_mapped_bytes"] = mapped.other;
  mem["mirror_bytes"] = probe_->slots().size() * sizeof(fp_proc);
  mem["history_bytes"] = engine_->table().memory_bytes();
  mem["procinfo_cached"] = infos_.size();
  s["memory"] = mem;
  s["sampling"] = {{"interval_ms", double(config_.sample_interval.count()) / 1e6},
                   {"achieved_hz", sample_hz_},
                   {"ticks", ticks_},
                   {"tick_cpu_us_p50", percentile_us(tick_cost_ns_, 0.5)},
                   {"tick_cpu_us_p99", percentile_us(tick_cost_ns_, 0.99)},
                   // the probe's changed slots per tick (mean over the last second): the
                   // detectors' per-tick work follows this, not the processes tracked
                   {"changed_per_tick", changed_per_tick_}};
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : config_.rules)
    rules.push_back({{"name", r.name}, {"class", fault_class_name(r.cls)}, {"enabled", r.enabled}});
  s["rules"] = rules;
  nlohmann::json pols = nlohmann::json::array();
  for (const auto& p : config_.policies) {
    nlohmann::json on = nlohmann::json::object();
    for (const auto& [cls, steps] : p.on) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& st : steps) a.push_back(st.text);
      on[fault_class_name(cls)] = a;
    }
    pols.push_back({{"name", p.name}, {"on", on}, {"dry_run", p.dry_run}, {"user_units", p.user_units}});
  }
  s["policies"] = pols;
  nlohmann::json svcs = nlohmann::json::array();
  for (const auto& st : supervisor_->status())
    svcs.push_back({{"name", st.name},
                    {"state", st.state},
                    {"pid", st.pid},
                    {"restarts", st.restarts},
                    {"failures_in_window", st.failures_in_window},
                    {"last_exit", st.last_exit},
                    {"checkpoint", st.checkpoint_backend},
                    {"last_checkpoint", st.last_checkpoint},
                    {"suspect_checkpoints", st.suspect_checkpoints}});
  s["services"] = svcs;
  s["action_worker"] = ActionWorker::to_json(worker_->stats());  // what runs off the loop now
  s["actions"] = counters_.actions;
  s["faults_opened"] = counters_.faults_by_class;
  s["open_faults"] = engine_->open_faults().size();
  s["throttle_backend"] = throttle_ ? throttle_->name() : "none";
  if (!throttle_why_.empty()) s["throttle_backend_reason"] = throttle_why_;
  s["criu"] = {{"available", criu_status_.available},
               {"version", criu_status_.version},
               {"reason", criu_status_.reason}};
  s["syslog"] = {{"sinks", alerter_ ? alerter_->sinks() : std::vector<std::string>{}},
                 {"sent", alerter_ ? alerter_->sent() : 0},
                 {"suppressed", alerter_ ? alerter_->suppressed() : 0},
                 {"forward_failures", alerter_ ? alerter_->forward_failures() : 0}};
  s["limits"] = limits_status({infos_.stats(), server_.get(), records_failed_.load(), ticks_failed_.load(),
                               respawn_ ? std::optional(respawn_->stats()) : std::nullopt});
  s["metrics_listen"] = config_.daemon.metrics_listen;
  if (server_) {
    auto ss = server_->stats();
    s["socket"] = {{"path", server_->path()},
                   {"clients", ss.clients_now},
                   {"followers", ss.followers_now},
                   {"refused", ss.refused},
                   {"malformed", ss.malformed},
                   {"dropped_slow", ss.dropped_slow}};
  }
  return s;
}

std::string Service::view_json() {
  const uint64_t asked = monotonic_now_ns();
  view_wanted_ns_.store(asked, std::memory_order_relaxed);
  std::unique_lock<std::mutex> g(view_mu_);
  // Rows are built only while wanted: the first request (or one after a
  // pause) waits for the sampling thread's next tick, at most a second.
  view_cv_.wait_until(g, std::chrono::steady_clock::now() + std::chrono::seconds(1), [&] {
    return view_ != nullptr && asked - std::min(asked, view_built_ns_) < kViewFreshNs;
  });
  if (view_ == nullptr) return "{}";
  if (view_json_gen_ != view_gen_) {
    // Serialized here, on the asking thread, once per view.
    std::shared_ptr<const DaemonView> v = view_;
    g.unlock();
    std::string text = safe_dump(view_to_json(*v));
    g.lock();
    if (view_ == v) {
      view_json_ = std::move(text);
      view_json_gen_ = view_gen_;
    } else {
      return text;
    }
  }
  return view_json_;
}

nlohmann::json Service::status() {
  std::lock_guard<std::mutex> g(view_mu_);
  return status_json_;
}

// Open faults go to <state_dir>/open-faults.json whenever the set changes,
// with the boot they belong to (monotonic times mean nothing across boots).
void Service::save_state() {
  if (config_.daemon.state_dir.empty() || !engine_) return;
  nlohmann::json j;
  j["boot_id"] = boot_id();
  j["open"] = nlohmann::json::array();
  for (const auto& f : engine_->open_faults()) j["open"].push_back(fault_state_to_json(f));
  if (!write_atomic(config_.daemon.state_dir + "/open-faults.json", safe_dump(j)))
    spdlog::warn("cannot write {}/open-faults.json: {}", config_.daemon.state_dir, std::strerror(errno));
}

void Service::load_state(uint64_t now) {
  if (config_.daemon.state_dir.empty()) return;
  std::ifstream in(config_.daemon.state_dir + "/open-faults.json");
  if (!in) return;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("ignoring a malformed {}/open-faults.json", config_.daemon.state_dir);
    return;
  }
  if (j.value("boot_id", "") != boot_id()) return;  // another boot: those processes are gone
  unescape_json_strings(j);  // names are kept escaped (safe_dump): the model holds the bytes
  std::vector<FaultRecord> open;
  for (const auto& f : j.value("open", nlohmann::json::array()))
    if (auto r = fault_state_from_json(f)) open.push_back(*r);
  adopted_ = engine_->adopt_open_faults(open, now);
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
      // wakes us and is handled at once instead of at the next tick.
      uint64_t until = std::min(next, throttle_ ? throttle_->next_deadline_ns() : next);
      auto wait = std::chrono::milliseconds((std::max(until, now) - now + 999'999) / 1'000'000);
      probe_->poll(events_, wait);
      if (!urgent(events_) && monotonic_now_ns() < next) {
        if (throttle_ && throttle_->next_deadline_ns() <= monotonic_now_ns())
          guarded("throttle duty cycle", [&] { throttle_->tick(monotonic_now_ns()); });
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
