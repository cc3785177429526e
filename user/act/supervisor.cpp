#include "act/supervisor.h"

#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

#include "act/checkpoint_trust.h"
#include "util/keepalive.h"

namespace fp {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

uint64_t ns(std::chrono::nanoseconds d) { return d.count() > 0 ? static_cast<uint64_t>(d.count()) : 0; }

// "5s", "1.5s", "100ms" for messages.
std::string human(std::chrono::nanoseconds d) {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ms) / 1000.0);
  return buf;
}

bool same_config(const ServiceConfig& a, const ServiceConfig& b) {
  auto fields = [](const ServiceConfig& c) {
    return std::tie(c.name, c.command, c.user, c.cwd, c.env, c.restart, c.stop_grace, c.backoff_initial,
                    c.backoff_max, c.crash_loop_limit, c.crash_loop_window, c.checkpoint.backend, c.checkpoint.dir,
                    c.checkpoint.every, c.checkpoint.keep);
  };
  return fields(a) == fields(b);
}

bool is_failure(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

const char* backend_name(CheckpointConfig::Backend b) {
  switch (b) {
    case CheckpointConfig::Backend::App: return "app";
    case CheckpointConfig::Backend::Criu: return "criu";
    case CheckpointConfig::Backend::None: break;
  }
  return "none";
}

void set_env(std::vector<std::pair<std::string, std::string>>& env, const std::string& key, const std::string& value) {
  std::erase_if(env, [&](const auto& kv) { return kv.first == key; });
  env.emplace_back(key, value);
}

// mkdir -p of the daemon's own (configured) log directory.
void ensure_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) spdlog::warn("cannot create {}: {}", dir, ec.message());
}

// Who may own a service's checkpoint directory besides root: its user.
struct DirOwner {
  std::optional<uid_t> uid;  // nullopt: root only
  gid_t gid = 0;
};
DirOwner owner_of(const ServiceConfig& c) {
  DirOwner o;
  if (c.user.empty()) return o;
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r(c.user.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
    o.uid = found->pw_uid;
    o.gid = found->pw_gid;
  }
  return o;
}

// Real monotonic time (not the supervisor's Clock): compared with /proc start times.
uint64_t real_monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

const char* supervisor_event_name(SupervisorEvent::Kind k) {
  using K = SupervisorEvent::Kind;
  switch (k) {
    case K::Started: return "started";
    case K::StartFailed: return "start_failed";
    case K::Exited: return "exited";
    case K::Restarting: return "restarting";
    case K::CrashLoopTripped: return "crash_loop_tripped";
    case K::Stopped: return "stopped";
    case K::RestoreFailed: return "restore_failed";
    case K::Checkpointed: return "checkpointed";
    case K::CheckpointFailed: return "checkpoint_failed";
  }
  return "unknown";
}

std::string describe(const SupervisorEvent& e) {
  using K = SupervisorEvent::Kind;
  std::string s = "service " + e.service + ": ";
  switch (e.kind) {
    case K::Started:
      s += "started, pid " + std::to_string(e.pid);
      break;
    case K::StartFailed: s += "start failed"; break;
    case K::Exited: s += "pid " + std::to_string(e.pid) + " " + describe_wait_status(e.wait_status); break;
    case K::Restarting: s += "restarting in " + std::to_string(e.delay_ms) + " ms"; break;
    case K::CrashLoopTripped: s += "crash loop, not restarting any more"; break;
    case K::Stopped: s += "stopped pid " + std::to_string(e.pid) + " (" + describe_wait_status(e.wait_status) + ")"; break;
    case K::RestoreFailed: s += "restore failed"; break;
    case K::Checkpointed: s += "checkpoint written"; break;
    case K::CheckpointFailed: s += "checkpoint failed"; break;
  }
  if (!e.detail.empty()) s += ": " + e.detail;
  return s;
}

Supervisor::Supervisor(Clock& clock, Spawner& spawner, SupervisorOptions options)
    : clock_(clock), spawner_(spawner), opts_(std::move(options)) {}

Supervisor::~Supervisor() {
  for (auto& [name, s] : services_) spawner_.release(s.pidfd);
}

void Supervisor::emit(SupervisorEvent e) {
  using K = SupervisorEvent::Kind;
  const bool bad = e.kind == K::StartFailed || e.kind == K::CrashLoopTripped || e.kind == K::RestoreFailed ||
                   e.kind == K::CheckpointFailed || (e.kind == K::Exited && is_failure(e.wait_status));
  if (e.kind == K::CrashLoopTripped)
    spdlog::critical("{}", describe(e));
  else if (bad)
    spdlog::warn("{}", describe(e));
  else
    spdlog::info("{}", describe(e));
  if (opts_.on_event) opts_.on_event(e);
}

SpawnSpec Supervisor::spec_for(const Service& s, const std::optional<std::string>& restore_from) const {
  SpawnSpec spec;
  spec.argv = s.cfg.command;
  spec.cwd = s.cfg.cwd.empty() ? "/" : s.cfg.cwd;
  spec.user = s.cfg.user;
  spec.env = s.cfg.env;
  // The config gives the whole environment; a service without PATH would not
  // find the programs it runs, as under systemd.
  if (std::none_of(spec.env.begin(), spec.env.end(), [](const auto& kv) { return kv.first == "PATH"; }))
    spec.env.emplace_back("PATH", kDefaultPath);
  set_env(spec.env, "FAULTPROBE_SERVICE", s.cfg.name);
  if (s.cfg.checkpoint.backend == CheckpointConfig::Backend::App)
    set_env(spec.env, "FAULTPROBE_CHECKPOINT_DIR", s.cfg.checkpoint.dir);
  if (restore_from) set_env(spec.env, "FAULTPROBE_RESTORE_FROM", *restore_from);
  if (!opts_.log_dir.empty()) spec.log_path = (std::filesystem::path(opts_.log_dir) / (s.cfg.name + ".log")).string();
  return spec;
}

std::vector<CheckpointEntry> Supervisor::checkpoints_of(const Service& s) const {
  switch (s.cfg.checkpoint.backend) {
    case CheckpointConfig::Backend::App: return complete_checkpoints(s.cfg.checkpoint.dir);
    case CheckpointConfig::Backend::Criu: return CriuBackend::images(s.cfg.checkpoint.dir);
    case CheckpointConfig::Backend::None: break;
  }
  return {};
}

namespace {

// " (older: the newer ones brought the fault back)": why a pick is what it is.
std::string pick_note(const RestoreChoice::Pick& p) {
  if (p.source == RestoreChoice::Source::Newest && p.why.empty()) return "";
  return std::string(" (") + restore_source_name(p.source) + (p.why.empty() ? "" : ": " + p.why) + ")";
}

}  // namespace

Supervisor::StartPlan Supervisor::plan_start(Service& s, bool from_checkpoint) {
  const CheckpointConfig& cp = s.cfg.checkpoint;
  StartPlan plan;
  plan.name = s.cfg.name;
  plan.command0 = s.cfg.command.empty() ? "" : s.cfg.command[0];
  std::optional<std::string> restore_from;
  if (from_checkpoint) plan.source = restore_source_name(RestoreChoice::Source::Clean);

  if (from_checkpoint && cp.backend == CheckpointConfig::Backend::Criu) {
    std::string why;
    if (opts_.criu == nullptr) {
      why = "no CRIU backend";
    } else if (!opts_.criu->status().available) {
      why = "CRIU unavailable: " + opts_.criu->status().reason;
    } else if (auto trusted = open_trusted_dir(cp.dir, std::nullopt); !trusted) {
      // CRIU restores as root what the images say: only root may have written them.
      why = trusted.error().message;
    } else {
      const auto checkpoints = checkpoints_of(s);
      RestoreChoice::Pick pick = s.choice.choose(checkpoints);
      if (!pick.checkpoint) {
        s.choice.used(pick);
        plan.detail = "clean start" + pick_note(pick);
        spdlog::info("service {}: clean start, no CRIU image to trust: {}", s.cfg.name, pick.why);
      } else {
        plan.restores.push_back(pick);
        // The ladder's next rung, should this restore not even run: only from the newest.
        if (pick.source == RestoreChoice::Source::Newest)
          if (auto older = s.choice.older_than(*pick.checkpoint, checkpoints)) plan.restores.push_back(*older);
      }
    }
    if (!why.empty())
      emit({SupervisorEvent::Kind::RestoreFailed, s.cfg.name, 0, 0, 0, why + "; starting without restore",
            plan.source});
  } else if (from_checkpoint && cp.backend == CheckpointConfig::Backend::App) {
    // Owned by root or the service's user, writable by nobody else, no symlinks on the way.
    if (auto trusted = open_trusted_dir(cp.dir, owner_of(s.cfg).uid); !trusted) {
      emit({SupervisorEvent::Kind::RestoreFailed, s.cfg.name, 0, 0, 0,
            trusted.error().message + "; starting without restore", plan.source});
    } else {
      RestoreChoice::Pick pick = s.choice.choose(checkpoints_of(s));
      s.choice.used(pick);
      plan.source = restore_source_name(pick.source);
      if (pick.checkpoint) {
        restore_from = pick.checkpoint->path;
        plan.detail = "FAULTPROBE_RESTORE_FROM=" + *restore_from + pick_note(pick);
      } else {
        plan.detail = "clean start" + pick_note(pick);
        spdlog::info("service {}: no checkpoint to trust in {} ({}); starting without one", s.cfg.name, cp.dir,
                     pick.why);
      }
    }
  } else if (from_checkpoint) {
    spdlog::info("service {}: no checkpoint backend configured; starting without restore", s.cfg.name);
  }

  if (!opts_.log_dir.empty()) ensure_dir(opts_.log_dir);
  if (cp.backend == CheckpointConfig::Backend::App) {
    // Made (or checked) without following a link, and handed to the user by fd.
    const DirOwner o = owner_of(s.cfg);
    if (auto d = ensure_trusted_dir(cp.dir, o.uid, o.gid); !d) spdlog::warn("service {}: {}", s.cfg.name, d.error().message);
  }
  plan.spec = spec_for(s, restore_from);
  return plan;
}

// On the worker (or the loop without one): only the plan, the CRIU backend,
// the restore check and the spawner, all safe from another thread.
Supervisor::StartResult Supervisor::run_start(const StartPlan& plan) {
  StartResult r;
  for (size_t i = 0; i < plan.restores.size(); ++i) {
    const RestoreChoice::Pick& pick = plan.restores[i];
    const uint64_t began = real_monotonic_ns();  // whatever the restore makes starts after this
    auto check = [&](pid_t pid) { return opts_.verify_restored(pid, began, plan.command0); };
    auto proc = spawner_.restore(*opts_.criu, pick.checkpoint->path, plan.name, check);
    if (proc) {
      r.proc = std::move(proc);
      r.restored = pick;
      return r;
    }
    const bool last = i + 1 == plan.restores.size();
    r.restore_errors.push_back(proc.error().message + (last ? "; starting without restore"
                                                            : "; trying the older " + plan.restores[i + 1].checkpoint->path));
  }
  r.proc = spawner_.spawn(plan.spec);
  return r;
}

void Supervisor::start(Service& s, uint64_t now, bool from_checkpoint) {
  StartPlan plan = plan_start(s, from_checkpoint);
  const uint64_t seq = ++s.start_seq;
  s.after = After::Nothing;
  if (opts_.worker == nullptr || (plan.restores.empty() && !spawner_.slow())) {
    start_done(s, now, plan, run_start(plan));
    return;
  }
  // Off the loop: criu restore may run a minute, systemd-run and systemctl
  // ten seconds each. The result lands in start_done() at a later tick.
  const std::string name = s.cfg.name;
  auto apply_to = [this, name, seq](const StartPlan& p, StartResult r) {
    auto it = services_.find(name);
    if (it != services_.end() && it->second.state == State::Starting && it->second.start_seq == seq) {
      start_done(it->second, clock_.now_ns(), p, std::move(r));
    } else if (r.proc) {
      // Nobody waits for it any more (cannot happen while configure keeps a starting service): not left running.
      spdlog::error("service {}: a start finished for nobody; killing pid {}", name, r.proc->pid);
      (void)spawner_.signal(r.proc->pid, r.proc->pidfd, SIGKILL);
      spawner_.release(r.proc->pidfd);
    }
  };
  auto job = [this, plan, apply_to]() -> ActionWorker::Apply {
    StartResult r = run_start(plan);
    return [plan, apply_to, r = std::move(r)]() mutable { apply_to(plan, std::move(r)); };
  };
  auto on_error = [plan, apply_to](const std::string& why) {
    StartResult r;
    r.proc = Error{ECANCELED, why};
    apply_to(plan, std::move(r));
  };
  const std::string what = std::string(plan.restores.empty() ? "start" : "criu restore") + " of service " + name;
  s.state = State::Starting;
  if (opts_.worker->submit(worker_target(name), what, job, on_error) != ActionWorker::Submitted::Queued) {
    StartResult r;
    r.proc = Error{EBUSY, "the action worker refused the start (busy, full or stopping)"};
    start_done(s, now, plan, std::move(r));
  }
}

void Supervisor::start_done(Service& s, uint64_t now, const StartPlan& plan, StartResult r) {
  for (const auto& why : r.restore_errors)
    emit({SupervisorEvent::Kind::RestoreFailed, s.cfg.name, 0, 0, 0, why, plan.source});
  const After pending = std::exchange(s.after, After::Nothing);
  s.state = State::Stopped;
  if (!r.proc) {
    s.last_exit = "start failed: " + r.proc.error().message;
    emit({SupervisorEvent::Kind::StartFailed, s.cfg.name, 0, 0, 0, r.proc.error().message, plan.source});
    if (pending == After::Remove) {
      s.remove = true;
    } else if (pending == After::Replace) {
      Service fresh;
      fresh.cfg = std::move(*s.replacement);
      fresh.backoff_ns = ns(fresh.cfg.backoff_initial);
      fresh.last_exit = s.last_exit;
      fresh.start_seq = s.start_seq;
      s = std::move(fresh);
      start(s, now, false);
    } else {
      on_failure(s, now);
    }
    return;
  }
  std::string detail = plan.detail, source = plan.source;
  if (r.restored) {
    s.choice.used(*r.restored);
    detail = "restored from " + r.restored->checkpoint->path + pick_note(*r.restored);
    source = restore_source_name(r.restored->source);
  } else if (!plan.restores.empty()) {
    // Every restore failed: what a did_not_hold() is about now is a clean start.
    RestoreChoice::Pick clean;
    clean.source = RestoreChoice::Source::Clean;
    clean.why = std::to_string(plan.restores.size()) + " restore(s) failed";
    s.choice.used(clean);
    detail = "clean start (" + clean.why + ")";
  }
  const Spawned& proc = *r.proc;
  s.pid = proc.pid;
  s.pidfd = proc.pidfd;
  s.unit = proc.unit;
  s.key = proc.key;
  s.key.tgid = static_cast<uint32_t>(proc.pid);
  if (opts_.start_of) s.key.start_ns = opts_.start_of(proc.pid);
  s.state = State::Running;
  s.started_ns = now;
  s.killed = false;
  s.restore_on_start = false;
  s.next_dump_ns = now + ns(s.cfg.checkpoint.every);
  ++s.starts;
  emit({SupervisorEvent::Kind::Started, s.cfg.name, s.pid, 0, 0, detail, source});
  // A reload or removal that came while it was starting.
  if (pending == After::Replace || pending == After::Remove) begin_stop(s, now, pending);
}

void Supervisor::ended(Service& s, uint64_t now, int status) {
  if (status != kUnknownWaitStatus || s.unit.empty()) {
    on_exit(s, now, status);
    return;
  }
  // Not our child: systemd's record of its unit says how it ended. Until that
  // is read (off the loop) the service is not reaped again: the worker is
  // busy with its target.
  auto resolved = [this](Service& sv, uint64_t t, const Result<int>& r) {
    if (!r) spdlog::warn("service {}: how pid {} ended is unknown: {}", sv.cfg.name, sv.pid, r.error().message);
    on_exit(sv, t, r ? r.value() : kUnknownWaitStatus);
  };
  if (opts_.worker == nullptr) {
    resolved(s, now, spawner_.exit_status(s.unit));
    return;
  }
  const std::string name = s.cfg.name, unit = s.unit;
  const uint64_t seq = s.start_seq;
  auto apply_to = [this, name, seq, resolved](const Result<int>& r) {
    auto it = services_.find(name);
    if (it != services_.end() && it->second.start_seq == seq && it->second.pid > 0)
      resolved(it->second, clock_.now_ns(), r);
  };
  auto job = [this, unit, apply_to]() -> ActionWorker::Apply {
    Result<int> r = spawner_.exit_status(unit);
    return [apply_to, r = std::move(r)] { apply_to(r); };
  };
  auto on_error = [apply_to](const std::string& why) { apply_to(Error{ECANCELED, why}); };
  if (opts_.worker->submit(worker_target(name), "exit status of " + unit, job, on_error) !=
      ActionWorker::Submitted::Queued)
    resolved(s, now, Error{EBUSY, "the action worker refused to read it"});
}

// A failed run or a failed start: counts towards the crash-loop limit, then
// either trips it or schedules the next start.
void Supervisor::on_failure(Service& s, uint64_t now) {
  const uint64_t window = ns(s.cfg.crash_loop_window);
  s.failures.push_back(now);
  std::erase_if(s.failures, [&](uint64_t t) { return now - t >= window; });
  s.restore_on_start = s.cfg.checkpoint.backend != CheckpointConfig::Backend::None;
  if (s.failures.size() >= s.cfg.crash_loop_limit) {
    s.state = State::Failed;
    s.tripped = true;
    emit({SupervisorEvent::Kind::CrashLoopTripped, s.cfg.name, 0, 0, 0,
          std::to_string(s.failures.size()) + " failures in " + human(s.cfg.crash_loop_window) +
              " (limit " + std::to_string(s.cfg.crash_loop_limit) + "); last: " + s.last_exit});
    return;
  }
  if (s.cfg.restart == ServiceConfig::Restart::No) {
    s.state = State::Failed;
    return;
  }
  schedule_restart(s, now);
}

void Supervisor::schedule_restart(Service& s, uint64_t now) {
  const uint64_t delay = s.backoff_ns;
  s.backoff_ns = std::min(s.backoff_ns * 2, ns(s.cfg.backoff_max));
  s.state = State::Backoff;
  s.next_start_ns = now + delay;
  emit({SupervisorEvent::Kind::Restarting, s.cfg.name, 0, 0, delay / 1'000'000, ""});
}

void Supervisor::on_exit(Service& s, uint64_t now, int status) {
  const pid_t pid = s.pid;
  spawner_.release(s.pidfd);
  s.last_pid = s.pid;
  s.pid = 0;
  s.pidfd = -1;
  s.unit.clear();
  s.last_exit = describe_wait_status(status);

  if (s.state == State::Stopping) {
    emit({SupervisorEvent::Kind::Stopped, s.cfg.name, pid, status, 0, ""});
    const After after = std::exchange(s.after, After::Nothing);
    s.state = State::Stopped;
    switch (after) {
      case After::Start: start(s, now, false); break;
      case After::StartFromCheckpoint: start(s, now, true); break;
      case After::Replace: {
        Service fresh;
        fresh.cfg = std::move(*s.replacement);
        fresh.backoff_ns = ns(fresh.cfg.backoff_initial);
        fresh.last_exit = s.last_exit;
        s = std::move(fresh);
        start(s, now, false);
        break;
      }
      case After::Remove: s.remove = true; break;
      case After::Nothing: break;
    }
    return;
  }

  emit({SupervisorEvent::Kind::Exited, s.cfg.name, pid, status, 0, ""});
  // A run as long as the window without failing earns a fresh backoff.
  if (now - s.started_ns >= ns(s.cfg.crash_loop_window)) s.backoff_ns = ns(s.cfg.backoff_initial);
  if (is_failure(status)) {
    on_failure(s, now);
    return;
  }
  if (s.cfg.restart == ServiceConfig::Restart::Always) {
    s.restore_on_start = false;
    schedule_restart(s, now);
  } else {
    s.state = State::Stopped;
  }
}

void Supervisor::begin_stop(Service& s, uint64_t now, After after) {
  s.after = after;
  if (s.state == State::Stopping) return;  // already on its way down: only what follows changes
  if (auto r = spawner_.signal(s.pid, s.pidfd, SIGTERM); !r)
    spdlog::warn("service {}: SIGTERM to pid {}: {}", s.cfg.name, s.pid, r.error().message);
  s.state = State::Stopping;
  s.kill_at_ns = now + ns(s.cfg.stop_grace);
  s.killed = false;
}

void Supervisor::maybe_dump(Service& s, uint64_t now) {
  if (s.cfg.checkpoint.backend != CheckpointConfig::Backend::Criu || opts_.criu == nullptr ||
      !opts_.criu->status().available || now < s.next_dump_ns)
    return;
  s.next_dump_ns = now + ns(s.cfg.checkpoint.every);
  // Root writes the images: into a directory only root can write, or not at all.
  if (auto d = ensure_trusted_dir(s.cfg.checkpoint.dir, std::nullopt, 0); !d) {
    emit({SupervisorEvent::Kind::CheckpointFailed, s.cfg.name, s.pid, 0, 0, d.error().message});
    return;
  }
  if (opts_.worker == nullptr) {
    dump_done(s.cfg.name, s.pid, opts_.criu->dump(s.pid, s.cfg.checkpoint.dir, s.cfg.checkpoint.keep));
    return;
  }
  // Off the loop: a dump may take a minute. Until its result is applied,
  // tick() does not reap the service (a zombie keeps its pid from being
  // reused under criu), and so no restore starts beside it either.
  CriuBackend* criu = opts_.criu;
  const std::string name = s.cfg.name, dir = s.cfg.checkpoint.dir;
  const pid_t pid = s.pid;
  const uint32_t keep = s.cfg.checkpoint.keep;
  auto job = [this, criu, name, dir, pid, keep]() -> ActionWorker::Apply {
    auto r = criu->dump(pid, dir, keep);
    return [this, name, pid, r = std::move(r)] { dump_done(name, pid, r); };
  };
  auto on_error = [this, name, pid](const std::string& why) { dump_done(name, pid, Error{EIO, why}); };
  switch (opts_.worker->submit(worker_target(name), "criu dump of service " + name, job, on_error)) {
    case ActionWorker::Submitted::Queued: break;
    case ActionWorker::Submitted::Busy:
      spdlog::warn("service {}: the previous criu dump is still under way; skipping this one", name);
      break;
    case ActionWorker::Submitted::Full:
    case ActionWorker::Submitted::Stopped:
      emit({SupervisorEvent::Kind::CheckpointFailed, name, pid, 0, 0, "the action worker refused the dump (queue full or stopping)"});
      break;
  }
}

void Supervisor::dump_done(const std::string& name, pid_t pid, const Result<std::string>& r) {
  auto it = services_.find(name);
  if (r) {
    if (it != services_.end()) it->second.last_image = r.value();
    emit({SupervisorEvent::Kind::Checkpointed, name, pid, 0, 0, r.value()});
  } else {
    emit({SupervisorEvent::Kind::CheckpointFailed, name, pid, 0, 0, r.error().message});
  }
}

void Supervisor::configure(const std::vector<ServiceConfig>& services) {
  const uint64_t now = clock_.now_ns();
  std::set<std::string> seen;
  for (const ServiceConfig& cfg : services) {
    if (!seen.insert(cfg.name).second) {
      spdlog::warn("service {} is declared twice; the first one is used", cfg.name);
      continue;
    }
    auto it = services_.find(cfg.name);
    if (it == services_.end()) {
      Service& s = services_[cfg.name];
      s.cfg = cfg;
      s.backoff_ns = ns(cfg.backoff_initial);
      start(s, now, false);
      continue;
    }
    Service& s = it->second;
    const bool pending_removal = (s.state == State::Stopping || s.state == State::Starting) && s.after == After::Remove;
    if (same_config(cfg, s.cfg) && !pending_removal) continue;
    if (s.state == State::Starting) {  // stopped and replaced once its start is in (start_done)
      s.replacement = cfg;
      s.after = After::Replace;
    } else if (s.pid > 0) {
      s.replacement = cfg;
      begin_stop(s, now, After::Replace);
    } else {
      Service fresh;
      fresh.cfg = cfg;
      fresh.backoff_ns = ns(cfg.backoff_initial);
      fresh.last_exit = s.last_exit;
      s = std::move(fresh);
      start(s, now, false);
    }
  }
  for (auto it = services_.begin(); it != services_.end();) {
    if (seen.count(it->first) != 0) {
      ++it;
    } else if (it->second.state == State::Starting) {
      it->second.after = After::Remove;
      ++it;
    } else if (it->second.pid > 0) {
      begin_stop(it->second, now, After::Remove);
      ++it;
    } else {
      spdlog::info("service {}: removed from the config", it->first);
      it = services_.erase(it);
    }
  }
}

void Supervisor::tick(uint64_t now) {
  for (auto it = services_.begin(); it != services_.end();) {
    Service& s = it->second;
    // A dump or an exit status read under way holds the reap (and the next dump).
    const bool busy = opts_.worker != nullptr && opts_.worker->busy(worker_target(s.cfg.name));
    if (s.pid > 0 && !busy) {
      if (auto status = spawner_.reap(s.pid, s.pidfd)) ended(s, now, *status);
    }
    if (s.state == State::Stopping && s.pid > 0 && !s.killed && now >= s.kill_at_ns) {
      spdlog::warn("service {}: pid {} still running {} after SIGTERM; SIGKILL", s.cfg.name, s.pid,
                   human(s.cfg.stop_grace));
      if (auto r = spawner_.signal(s.pid, s.pidfd, SIGKILL); !r)
        spdlog::warn("service {}: SIGKILL to pid {}: {}", s.cfg.name, s.pid, r.error().message);
      s.killed = true;
    }
    if (s.state == State::Backoff && now >= s.next_start_ns) start(s, now, s.restore_on_start);
    if (s.state == State::Running && s.pid > 0 && !busy) maybe_dump(s, now);
    if (s.remove) {
      spdlog::info("service {}: removed from the config", it->first);
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
}

ActionOutcome Supervisor::restart(const std::string& name, bool from_checkpoint, bool dry_run) {
  ActionOutcome out;
  auto it = services_.find(name);
  if (it == services_.end()) return {ActionResult::Failed, "no service named " + name, {}};
  Service& s = it->second;
  const uint64_t now = clock_.now_ns();

  std::string source;
  if (from_checkpoint) {
    const CheckpointConfig& cp = s.cfg.checkpoint;
    const RestoreChoice::Pick pick = s.choice.choose(checkpoints_of(s));
    out.restore_source = restore_source_name(pick.source);
    if (cp.backend == CheckpointConfig::Backend::Criu && (opts_.criu == nullptr || !opts_.criu->status().available)) {
      source = " (CRIU unavailable: plain start)";
      out.restore_source = restore_source_name(RestoreChoice::Source::Clean);
    } else if (cp.backend != CheckpointConfig::Backend::None &&
               !open_trusted_dir(cp.dir, cp.backend == CheckpointConfig::Backend::App
                                             ? std::optional<uid_t>(owner_of(s.cfg).uid)
                                             : std::nullopt)) {
      source = " (" + cp.dir + " is not a trusted checkpoint directory: plain start)";
      out.restore_source = restore_source_name(RestoreChoice::Source::Clean);
    } else if (cp.backend == CheckpointConfig::Backend::None) {
      source = " (no checkpoint backend: plain start)";
      out.restore_source = restore_source_name(RestoreChoice::Source::Clean);
    } else if (pick.checkpoint) {
      source = " from checkpoint " + pick.checkpoint->path + pick_note(pick);
    } else {
      source = " with a clean start" + pick_note(pick);
    }
  }
  // Every outcome below names where the restore starts from.
  auto with_source = [&](ActionOutcome o) {
    o.restore_source = out.restore_source;
    return o;
  };

  switch (s.state) {
    case State::Failed:
      if (s.tripped) {
        return with_source({ActionResult::Skipped,
                            "service " + name + " is down after its crash-loop limit (" + s.last_exit +
                                "); not restarting",
                            {}});
      }
      [[fallthrough]];
    case State::Backoff:
    case State::Stopped: {
      if (dry_run) return with_source({ActionResult::DryRun, "would start service " + name + " now" + source, {}});
      start(s, now, from_checkpoint);
      if (s.state == State::Starting)
        return with_source({ActionResult::Ok, "starting service " + name + source + " (off the sampling loop)", {}});
      if (s.state != State::Running)
        return with_source({ActionResult::Failed, "service " + name + ": " + s.last_exit, {}});
      return with_source(
          {ActionResult::Ok, "started service " + name + ", pid " + std::to_string(s.pid) + source, s.key});
    }
    case State::Stopping:
      if (s.after == After::Start && from_checkpoint) s.after = After::StartFromCheckpoint;
      return with_source({ActionResult::Skipped, "service " + name + " is already stopping", {}});
    case State::Starting:
      return with_source({ActionResult::Skipped, "service " + name + " is starting", {}});
    case State::Running:
      break;
  }
  const std::string how = "SIGTERM, " + human(s.cfg.stop_grace) + " grace, then SIGKILL";
  if (dry_run) {
    return with_source({ActionResult::DryRun,
                        "would restart service " + name + " (pid " + std::to_string(s.pid) + ": " + how + ")" + source,
                        {}});
  }
  const pid_t old = s.pid;
  begin_stop(s, now, from_checkpoint ? After::StartFromCheckpoint : After::Start);
  return with_source({ActionResult::Ok,
                      "restarting service " + name + ": SIGTERM sent to pid " + std::to_string(old) +
                          " (SIGKILL after " + human(s.cfg.stop_grace) + "), then start" + source,
                      {}});
}

void Supervisor::set_faulty(const std::set<std::string>& names) {
  const auto now = std::filesystem::file_time_type::clock::now();
  for (auto& [name, s] : services_) {
    if (names.count(name) != 0)
      s.choice.fault_open(now);
    else
      s.choice.fault_closed(now);
  }
}

std::optional<std::string> Supervisor::restore_verdict(const std::string& name, bool held) {
  auto it = services_.find(name);
  if (it == services_.end()) return std::nullopt;
  Service& s = it->second;
  if (held) {
    s.choice.held();
    return std::nullopt;
  }
  auto next = s.choice.did_not_hold(checkpoints_of(s));
  if (next) spdlog::warn("service {}: the restore brought the fault back; the next one starts from {}", name, *next);
  return next;
}



std::optional<std::string> Supervisor::service_of(uint32_t pid) const {
  if (pid == 0) return std::nullopt;
  for (const auto& [name, s] : services_) {
    if (s.pid > 0 && static_cast<uint32_t>(s.pid) == pid) return name;
    if (s.last_pid > 0 && static_cast<uint32_t>(s.last_pid) == pid) return name;
  }
  return std::nullopt;
}

std::vector<ServiceStatus> Supervisor::status() const {
  const uint64_t now = clock_.now_ns();
  std::vector<ServiceStatus> out;
  for (const auto& [name, s] : services_) {
    ServiceStatus st;
    st.name = name;
    switch (s.state) {
      case State::Running: st.state = "running"; break;
      case State::Starting: st.state = "starting"; break;
      case State::Backoff: st.state = "backoff"; break;
      case State::Stopping: st.state = "stopping"; break;
      case State::Failed: st.state = "failed"; break;
      case State::Stopped: st.state = "stopped"; break;
    }
    st.pid = s.pid;
    st.key = s.pid > 0 ? s.key : ProcKey{};
    st.restarts = s.starts > 0 ? s.starts - 1 : 0;
    const uint64_t window = ns(s.cfg.crash_loop_window);
    st.failures_in_window =
        static_cast<uint32_t>(std::count_if(s.failures.begin(), s.failures.end(),
                                            [&](uint64_t t) { return now - t < window; }));
    st.last_exit = s.last_exit;
    st.checkpoint_backend = backend_name(s.cfg.checkpoint.backend);
    const auto checkpoints = checkpoints_of(s);  // oldest first: an app's by mtime, CRIU's by number
    st.suspect_checkpoints = s.choice.marked(checkpoints);
    if (!checkpoints.empty()) st.last_checkpoint = checkpoints.back().path;
    if (s.cfg.checkpoint.backend == CheckpointConfig::Backend::Criu) {
      st.criu = opts_.criu != nullptr ? opts_.criu->status() : CriuStatus{false, "", "no CRIU backend"};
    }
    out.push_back(std::move(st));
  }
  return out;
}

void Supervisor::stop_all() {
  // Real time, not clock_: this runs at shutdown, outside the daemon's loop.
  using steady = std::chrono::steady_clock;
  const auto t0 = steady::now();
  std::chrono::nanoseconds longest{0};
  for (auto& [name, s] : services_) {
    if (s.state == State::Backoff) s.state = State::Stopped;  // no start after shutdown
    if (s.pid <= 0) continue;
    if (s.state != State::Stopping) {
      if (auto r = spawner_.signal(s.pid, s.pidfd, SIGTERM); !r)
        spdlog::warn("service {}: SIGTERM to pid {}: {}", name, s.pid, r.error().message);
      s.state = State::Stopping;
      s.killed = false;
    }
    s.after = After::Nothing;
    longest = std::max(longest, s.cfg.stop_grace);
  }
  const uint64_t now = clock_.now_ns();
  for (;;) {
    bool alive = false;
    const auto elapsed = steady::now() - t0;
    for (auto& [name, s] : services_) {
      if (s.pid <= 0) continue;
      if (auto status = spawner_.reap(s.pid, s.pidfd)) {
        // Shutdown: the worker is gone, so a unit's record is read here (bounded by the spawner's timeout).
        if (*status == kUnknownWaitStatus && !s.unit.empty()) {
          auto r = spawner_.exit_status(s.unit);
          on_exit(s, now, r ? *r : kUnknownWaitStatus);
        } else {
          on_exit(s, now, *status);
        }
        continue;
      }
      alive = true;
      if (!s.killed && elapsed >= s.cfg.stop_grace) {
        spdlog::warn("service {}: pid {} still running after SIGTERM; SIGKILL", name, s.pid);
        (void)spawner_.signal(s.pid, s.pidfd, SIGKILL);
        s.killed = true;
      }
    }
    if (!alive) break;
    if (elapsed > longest + std::chrono::seconds(5)) {
      for (auto& [name, s] : services_) {
        if (s.pid > 0) spdlog::error("service {}: pid {} did not die after SIGKILL; giving up on it", name, s.pid);
      }
      break;
    }
    keepalive();  // a grace of many seconds: the watchdog still hears from us
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::erase_if(services_, [](const auto& kv) { return kv.second.remove; });
}

}  // namespace fp
