#include "daemon/service.h"

#include <unistd.h>

#include <algorithm>

#include "daemon/limits_status.h"
#include "report/snapshot_report.h"
#include "util/clock.h"
#include "util/memory_usage.h"
#include "util/text.h"

// Service's faces: the status JSON and the view it posts on the board
// (server/status_board.h).
namespace fp {
namespace {

double percentile_us(std::vector<uint64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return double(v[std::min(v.size() - 1, size_t(q * double(v.size())))]) / 1000.0;
}

}  // namespace

bool Service::view_wanted(uint64_t now) const { return metrics_ || board_.wanted(now); }

std::string Service::view_json() { return board_.view_json(); }

nlohmann::json Service::status() { return board_.status(); }

void Service::update_rates(uint64_t now) {
  // The host's CPU and IO rates need readings a second apart: taken here
  // whether or not a view is wanted, so that the first view after a pause
  // (a snapshot) shows the last second, not the time since the last view.
  host_stats_ = host_sampler_.sample(now);
  if (last_rate_ns_ != 0 && now > last_rate_ns_) {
    sample_hz_ = double(ticks_ - last_rate_ticks_) * 1e9 / double(now - last_rate_ns_);
    if (ticks_ > last_rate_ticks_)
      changed_per_tick_ = double(changed_total_ - last_rate_changed_) / double(ticks_ - last_rate_ticks_);
  }
  last_rate_changed_ = changed_total_;
  last_rate_ns_ = now;
  last_rate_ticks_ = ticks_;
}

void Service::serve_board(uint64_t now) {
  if (view_wanted(now) && (now - last_view_ns_ >= 1'000'000'000ull || board_.stale(now))) {
    rebuild_view(now);  // its status answers a status request too
  } else if (board_.status_asked()) {
    const uint64_t built = monotonic_now_ns();  // at or after the requests it answers
    board_.post(build_status(), nullptr, built);
  }
}

void Service::rebuild_view(uint64_t now) {
  auto v = std::make_shared<DaemonView>();
  v->realtime_ns = realtime_now_ns();
  v->window_ns = 1'000'000'000ull;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  v->hostname = host;
  v->host = host_stats_;
  const uint64_t built = monotonic_now_ns();  // at or after the status requests it answers
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
  board_.post(std::move(st), rows ? v : nullptr, built);
  if (rows && metrics_) metrics_->publish(v);
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
  s["pressure"] = pressure_.status();
  if (cgroup_pressure_ && !cgroup_pressure_->empty()) s["pressure"]["cgroups"] = cgroup_pressure_->status();
  if (!logwatch_.empty()) s["logwatch"] = logwatch_.status();
  if (!config_.left_out.empty()) s["config_left_out"] = config_.left_out;
  s["cpu_tick"] = probe_->cpu_tick_attached();
  s["thread_state"] = probe_->thread_task_storage() ? "task_storage" : "hash";
  s["runq_waits_from"] = probe_->runq_from_sched_info() ? "sched_info" : "wakeups";
  s["io_bytes_from"] = probe_->io_bytes_from();
  // how the processes alive at start got their slots: task_iter, or proc (and why)
  s["seed"] = seed_status_json(probe_->seed_status());
  // socket owners found by the resolver's walk (probe/net_resolve.h)
  s["net_resolve"] = net_resolve_status_json(probe_->net_resolve_status());
  s["runq_blame"] = probe_->runq_blame_fd() >= 0 ? "cpu_runners" : "top_cpu_consumer: " + probe_->runq_blame_reason();
  s["unavailable_counters"] = probe_->unavailable_counters();
  nlohmann::json drops = nlohmann::json::object();
  auto d = probe_->drops();
  for (unsigned i = 0; i < d.size(); ++i) drops[drop_reason_name(i)] = d[i];
  s["drops"] = drops;
  s["events_received"] = {{"exits", exits_received_},
                           {"signals", signals_received_},
                           {"ooms", ooms_received_},
                           {"hangs", hangs_received_},
                           {"kernel_errors", kernel_errors_received_}};
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
  // The probe reader's copies of changed slots and its per-slot digests
  // (there is no mirror of every slot any more; "mirror_bytes" was 544 B per slot).
  mem["probe_reader_bytes"] = probe_->reader_bytes();
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

}  // namespace fp
