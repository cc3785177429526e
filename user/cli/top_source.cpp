#include "cli/top_source.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "util/clock.h"

namespace fp {
namespace {

constexpr uint64_t kRateWindowNs = 1'000'000'000ull;  // the rows' rate window
constexpr size_t kTickCostSamples = 256;              // ticks behind the tick-cost percentiles

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

// Events that cannot wait for the next tick (as in the daemon): a crash, an OOM kill, a hang, a kernel error.
bool urgent(const EventBatch& b) {
  if (!b.signals.empty() || !b.ooms.empty() || !b.hangs.empty() || !b.kernel_errors.empty()) return true;
  for (const auto& e : b.exits)
    if (e.exit_code != 0) return true;
  return false;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, size_t(q * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(i), v.end());
  return v[i];
}

}  // namespace

// ---- daemon ----------------------------------------------------------------------

Result<std::unique_ptr<DaemonSource>> DaemonSource::open(const std::string& path,
                                                         std::chrono::milliseconds timeout) {
  std::unique_ptr<DaemonSource> s(new DaemonSource(path, timeout));
  auto first = s->fetch();
  if (!first) return first.error();
  return s;
}

Result<DaemonView> DaemonSource::fetch() {
  if (!client_) {
    auto c = Client::connect(path_, timeout_);
    if (!c) return Error{c.error().code, "cannot reach the daemon at " + path_ + ": " + c.error().message};
    client_ = std::make_unique<Client>(std::move(c).value());
  }
  auto reply = client_->request({{"cmd", "view"}}, timeout_);
  if (!reply) {
    client_.reset();  // a broken or timed-out connection: start over next time
    return Error{reply.error().code, "daemon: " + reply.error().message};
  }
  auto it = reply->find("view");
  if (it == reply->end() || !it->is_object()) {
    client_.reset();
    return Error{EPROTO, "daemon: the reply has no view"};
  }
  return view_from_json(*it);
}

// ---- local -----------------------------------------------------------------------

Result<std::unique_ptr<LocalSource>> LocalSource::start(Config cfg, std::string config_name, bool force_raw_tp) {
  if (auto pre = check_probe_prerequisites(); !pre) return pre.error();
  ProbeOptions popts;
  popts.force_raw_tp = force_raw_tp;
  auto probe = Probe::start(popts);
  if (!probe) return probe.error();

  std::unique_ptr<LocalSource> s(new LocalSource());
  s->cfg_ = std::move(cfg);
  s->config_name_ = std::move(config_name);
  s->probe_ = std::move(probe).value();
  s->hostname_ = host_name();
  HostStats first = s->host_.sample(monotonic_now_ns());  // also primes the CPU/IO rates
  HostInfo hi;
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  hi.ncpus = n > 0 ? unsigned(n) : first.ncpus;
  hi.page_size = uint64_t(sysconf(_SC_PAGESIZE));
  hi.mem_total_bytes = first.mem_total_bytes;
  s->engine_ = std::make_unique<Engine>(s->cfg_, hi, s->infos_, uint32_t(getpid()));
  if (s->probe_->runq_blame_fd() >= 0) {
    s->runq_blame_ = std::make_unique<RunqBlameReader>(s->probe_->runq_blame_fd());
    s->engine_->set_runq_blame(s->runq_blame_.get());
  }
  s->error_detectors_ = kernel_error_detector_names();
  s->engine_->set_error_detector_names(&s->error_detectors_);
  s->fetch_ns_ = monotonic_now_ns();
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

LocalSource::~LocalSource() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

// One sampling tick, as the daemon's: drain, copy the changed slots, run the engine.
void LocalSource::tick(uint64_t now, EventBatch& events) {
  const uint64_t cpu0 = thread_cpu_ns();
  probe_->drain(events);  // always consume (see the daemon's loop): poll() alone can stall behind a record
  std::vector<SlotChange> changed;
  const auto& slots = probe_->refresh();
  const auto& copies = probe_->changed_copies();
  for (size_t i = 0; i < slots.size(); i++) changed.push_back({slots[i], &copies[i]});
  std::lock_guard<std::mutex> lock(mu_);
  (void)engine_->tick(now, changed, events);  // the view shows open faults; top emits no event stream
  ++ticks_;
  malformed_ = probe_->malformed_events();  // written by drain() on this thread; read by fetch() under the lock
  if (now - last_prune_ns_ >= 10'000'000'000ull) {
    infos_.prune();
    last_prune_ns_ = now;
  }
  double us = double(thread_cpu_ns() - cpu0) / 1000.0;
  if (tick_us_.size() < kTickCostSamples)
    tick_us_.push_back(us);
  else
    tick_us_[tick_us_next_++ % kTickCostSamples] = us;
}

void LocalSource::run() {
  const uint64_t period = uint64_t(cfg_.sample_interval.count());
  uint64_t next = monotonic_now_ns() + period;
  EventBatch events;  // what poll() took while waiting goes to the next tick
  while (!stop_.load()) {
    uint64_t now = monotonic_now_ns();
    if (now < next) {
      auto wait = std::chrono::milliseconds((next - now + 999'999) / 1'000'000);
      probe_->poll(events, wait);
      if (!urgent(events) && monotonic_now_ns() < next) continue;
    }
    now = monotonic_now_ns();
    try {
      tick(now, events);
    } catch (const std::exception& e) {
      // A bug must cost one tick, not the live view.
      spdlog::error("tick failed, continuing: {}", e.what());
    }
    events.clear();
    if (now >= next) next += period;
    if (next + period < now) next = now + period;  // fell behind (suspend, stall): do not burst
  }
}

Result<DaemonView> LocalSource::fetch() {
  DaemonView v;
  const uint64_t now = monotonic_now_ns();
  v.realtime_ns = realtime_now_ns();
  v.window_ns = kRateWindowNs;
  v.hostname = hostname_;
  v.host = host_.sample(now);
  const DropCounts drops = probe_->drops();
  for (unsigned i = 0; i < FP_DROP_NR; ++i) {
    v.health.drops[i] = drops[i];
    v.health.drops_total += drops[i];
  }
  v.health.max_procs = probe_->max_procs();
  std::lock_guard<std::mutex> lock(mu_);
  const std::vector<FaultRecord> open = engine_->open_faults();
  v.procs = build_rows(engine_->table(), now, kRateWindowNs, infos_, open);
  for (const auto& f : open) v.open_faults.push_back(fault_to_json(f, v.realtime_ns));
  v.health.ticks = ticks_;
  if (now > fetch_ns_) v.health.sample_hz = double(ticks_ - fetch_ticks_) * 1e9 / double(now - fetch_ns_);
  fetch_ticks_ = ticks_;
  fetch_ns_ = now;
  v.health.tick_us_p50 = percentile(tick_us_, 0.50);
  v.health.tick_us_p99 = percentile(tick_us_, 0.99);
  v.health.procs_tracked = engine_->table().size();
  v.health.malformed_events = malformed_;
  v.status = {{"source", "local"}, {"config", config_name_}};
  return v;
}

// ---- choosing --------------------------------------------------------------------

std::unique_ptr<TopSource> open_top_source(const TopOptions& opts, SourceError* err) {
  const std::string socket = opts.socket_path.empty() ? kDefaultSocketPath : opts.socket_path;
  std::string daemon_error;
  // A rules file only means something to a local engine: -c implies --local.
  const bool local_only = opts.source == TopOptions::Source::Local || !opts.config_path.empty();
  if (!local_only) {
    auto d = DaemonSource::open(socket, std::chrono::milliseconds(2000));
    if (d) return std::move(d).value();
    daemon_error = d.error().message;
    if (opts.source == TopOptions::Source::Daemon) {
      *err = {1, daemon_error};
      return nullptr;
    }
    spdlog::debug("no daemon ({}), loading the probe here", daemon_error);
  }
  Config cfg;
  std::string name = "built-in config";
  if (opts.config_path.empty()) {
    cfg = default_config();
  } else {
    auto c = load_config_file(opts.config_path);
    if (!c) {
      *err = {2, c.error().message};
      return nullptr;
    }
    cfg = std::move(c).value();
    name = opts.config_path;
  }
  auto l = LocalSource::start(std::move(cfg), name, opts.force_raw_tp);
  if (!l) {
    std::string msg = "cannot load the probe: " + l.error().message;
    if (!daemon_error.empty()) msg += "\n(and no daemon answers: " + daemon_error + ")";
    *err = {1, msg};
    return nullptr;
  }
  return std::move(l).value();
}

}  // namespace fp
