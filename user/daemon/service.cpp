#include "daemon/service.h"

#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "daemon/notify.h"
#include "util/duration.h"

namespace fp {
namespace {

uint64_t realtime_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
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

// Events that cannot wait for the next tick: a crash, an OOM kill, a hang.
bool urgent(const EventBatch& b) {
  if (!b.signals.empty() || !b.ooms.empty() || !b.hangs.empty()) return true;
  for (const auto& e : b.exits)
    if (e.exit_code != 0) return true;
  return false;
}

}  // namespace

Result<std::unique_ptr<Service>> Service::create(const ServiceOptions& opts, int* exit_code) {
  std::unique_ptr<Service> s(new Service());
  s->opts_ = opts;
  if (opts.config_path.empty()) {
    s->config_ = default_config();
  } else {
    auto c = load_config_file(opts.config_path);
    if (!c) {
      *exit_code = 2;
      return c.error();
    }
    s->config_ = std::move(c).value();
  }
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
  ProbeOptions popts;
  popts.force_raw_tp = opts.force_raw_tp;
  popts.pin_dir = opts.pin_dir;
  auto probe = Probe::start(popts);
  if (!probe) {
    *exit_code = 1;
    return probe.error();
  }
  s->probe_ = std::move(probe).value();
  s->engine_ = std::make_unique<Engine>(s->config_, host_info(), s->infos_, uint32_t(getpid()));
  *exit_code = 0;
  return s;
}

Service::~Service() {
  if (own_events_out_ && events_out_) std::fclose(events_out_);
}

void Service::emit(const FaultRecord& r) {
  bool open = r.kind == FaultRecord::Kind::Fault;
  if (open) faults_++;
  auto line = fault_to_json(r, realtime_now_ns());
  std::string text = line.dump();
  if (open)
    spdlog::log(r.severity == Severity::Critical ? spdlog::level::critical : spdlog::level::warn,
                "fault {} rule={} pid={} comm={} evidence={}", fault_class_name(r.cls), r.rule,
                r.culprit.tgid, r.comm, r.evidence.dump());
  else
    spdlog::info("resolved {} rule={} pid={} comm={}", fault_class_name(r.cls), r.rule, r.culprit.tgid, r.comm);
  if (events_out_) {
    std::fputs(text.c_str(), events_out_);
    std::fputc('\n', events_out_);
    std::fflush(events_out_);
  }
}

void Service::tick(uint64_t now) {
  // Always consume: clean exits are submitted without a wake-up, and the
  // kernel only wakes a reader that has caught up, so poll() alone would
  // stall behind the first unconsumed record.
  probe_->drain(events_);
  const auto& changed = probe_->refresh();
  changed_.clear();
  for (uint32_t slot : changed) changed_.push_back(&probe_->slots()[slot]);
  if (!events_.exits.empty() || !events_.signals.empty())
    spdlog::debug("tick: {} changed, {} exits, {} signals, {} oom, {} hangs", changed_.size(), events_.exits.size(),
                  events_.signals.size(), events_.ooms.size(), events_.hangs.size());
  for (const auto& r : engine_->tick(now, changed_, events_)) emit(r);
  events_.clear();
  ticks_++;
  if (now - last_prune_ns_ >= 10'000'000'000ull) {
    infos_.prune();
    last_prune_ns_ = now;
  }
  if (now - last_health_ns_ >= 60'000'000'000ull) {
    uint64_t drops = 0;
    for (auto d : probe_->drops()) drops += d;
    spdlog::info("health: {} ticks, {} processes tracked, {} faults opened, {} probe drops", ticks_,
                 engine_->table().size(), faults_, drops);
    sd::status(fmt::format("{} processes tracked, {} faults opened, {} probe drops", engine_->table().size(),
                           faults_, drops));
    last_health_ns_ = now;
  }
}

void Service::do_reload() {
  if (opts_.config_path.empty()) {
    spdlog::info("SIGHUP: no config file, keeping the built-in defaults");
    return;
  }
  auto c = load_config_file(opts_.config_path);
  if (!c) {
    spdlog::error("SIGHUP: keeping the old configuration: {}", c.error().message);
    return;
  }
  config_ = std::move(c).value();
  engine_->reload(config_);  // resolved records of removed rules come out with the next tick
  spdlog::info("SIGHUP: reloaded {} ({} rules)", opts_.config_path, config_.rules.size());
}

int Service::run(std::atomic<bool>& stop, std::atomic<bool>& reload) {
  const uint64_t period = uint64_t(config_.sample_interval.count());
  spdlog::info("faultprobed: probe attached, {} rules, sampling every {}{}", config_.rules.size(),
               format_duration(config_.sample_interval), opts_.dry_run ? " (dry run)" : "");
  uint64_t next = monotonic_now_ns() + period;
  sd::Watchdog watchdog;
  while (!stop.load()) {
    watchdog.ping_if_due(monotonic_now_ns());
    if (reload.exchange(false)) do_reload();
    uint64_t now = monotonic_now_ns();
    if (now < next) {
      // Sleep in the ring buffer until the tick is due; a crash/OOM/hang event
      // wakes us and is handled at once instead of at the next tick.
      auto wait = std::chrono::milliseconds((next - now + 999'999) / 1'000'000);
      probe_->poll(events_, wait);
      if (!urgent(events_) && monotonic_now_ns() < next) continue;
    }  // tick() drains whatever poll() did not
    now = monotonic_now_ns();
    try {
      tick(now);
    } catch (const std::exception& e) {
      // A bug must cost one tick, not the monitoring of the host.
      spdlog::error("tick failed, continuing: {}", e.what());
      events_.clear();
    }
    if (ticks_ == 1)  // ready once the probe is attached and a first sample went through
      sd::ready(fmt::format("monitoring {} processes, {} rules ({} probe)", engine_->table().size(),
                            config_.rules.size(), probe_->took_over() ? "taken-over" : "fresh"));
    if (now >= next) next += period;
    if (next + period < now) next = now + period;  // fell behind (suspend, stall): do not burst
  }
  sd::stopping();
  spdlog::info("faultprobed: stopping after {} ticks{}", ticks_,
               probe_->pinned() ? "; the probe stays pinned in " + probe_->pin_dir() +
                                      " (faultprobed --detach-probe removes it)"
                                : "");
  return 0;
}

}  // namespace fp
