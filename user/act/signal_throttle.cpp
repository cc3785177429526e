#include "act/signal_throttle.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <limits>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "act/process.h"

namespace fp {
namespace {

std::string ms(uint64_t ns) { return std::to_string((ns + 500'000) / 1'000'000) + "ms"; }

// How long after a SIGSTOP the process is expected to be stopped.
constexpr uint64_t kCheckDelayNs = 100'000'000;

}  // namespace

SignalDutyCycle::SignalDutyCycle(Signaller& signaller, Clock& clock, uint64_t period_ns, std::string state_path,
                                 StateReader state_of)
    : signaller_(signaller),
      clock_(clock),
      period_ns_(period_ns ? period_ns : 1),
      state_path_(std::move(state_path)),
      state_of_(std::move(state_of)) {
  if (!state_of_)
    state_of_ = [](const ProcKey& k) -> std::optional<RunState> {
      auto st = verify_process(k);
      if (!st) return std::nullopt;
      return RunState{st->state, st->cpu_ticks};
    };
  load();
}

bool SignalDutyCycle::supports(const ThrottleLimits& l, std::string* why) const {
  auto no = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  if (l.memory_bytes) return no("the signal duty cycle cannot limit memory (no usable cgroup memory controller)");
  if (l.io_bps) return no("the signal duty cycle cannot limit io (no usable cgroup io/blkio controller)");
  if (l.pids) return no("the signal duty cycle cannot limit pids (no usable cgroup pids controller)");
  if (!l.cpu_share) return no("no limit given");
  if (!(*l.cpu_share > 0) || *l.cpu_share >= 1)
    return no("the signal duty cycle can only give a share of one CPU between 0% and 100% (asked " +
              std::to_string(std::lround(*l.cpu_share * 100)) + "%)");
  return true;
}

std::vector<ProcKey> SignalDutyCycle::throttled_keys() const {
  std::vector<ProcKey> keys;
  for (const auto& [k, c] : cycles_) keys.push_back(k);
  return keys;
}

uint64_t SignalDutyCycle::run_ns(const Cycle& c) const {
  double share = c.entry.limits.cpu_share.value_or(1.0);
  auto run = uint64_t(std::llround(share * double(period_ns_)));
  return std::clamp<uint64_t>(run, 1, period_ns_);
}

void SignalDutyCycle::evaluate(Cycle& c, uint64_t now) {
  if (c.gone) return;
  uint64_t pos = now > c.start_ns ? (now - c.start_ns) % period_ns_ : 0;
  uint64_t run = run_ns(c);
  bool stop = pos >= run;
  if (stop != c.stopped) {
    if (!stop) last_look(c);  // before the SIGCONT that ends the stop phase
    auto r = signaller_.send(c.entry.key, stop ? SIGSTOP : SIGCONT);
    if (!r.ok()) {
      // Gone (ESRCH) or not ours to signal any more: stop driving it. A
      // failed SIGSTOP leaves it running; a failed SIGCONT of a live process
      // is retried by release().
      c.gone = true;
      if (r.error().code == ESRCH)
        spdlog::info("throttle (signal): pid {} exited; duty cycle stopped", c.entry.key.tgid);
      else
        spdlog::warn("throttle (signal): pid {}: {}; duty cycle stopped", c.entry.key.tgid, r.error().message);
      return;
    }
    c.stopped = stop;
  }
  // Phase changes land on the period grid, so a late tick does not stretch
  // the cycle.
  c.next_ns = now - pos + (stop ? period_ns_ : run);
  // A stop takes effect when the signal is delivered (a task waiting for a
  // CPU or in D-state acts on it later): the first look comes a little after.
  if (stop && !c.first && c.check_ns == 0)
    c.check_ns = now + std::min<uint64_t>(kCheckDelayNs, (c.next_ns - now) / 2);
}

void SignalDutyCycle::first_look(Cycle& c) {
  c.check_ns = 0;
  if (!c.gone && c.stopped) c.first = state_of_(c.entry.key);
}

void SignalDutyCycle::last_look(Cycle& c) {
  std::optional<RunState> first = std::move(c.first);
  c.first.reset();
  c.check_ns = 0;
  if (c.gone || !c.stopped || !first) return;
  auto now = state_of_(c.entry.key);
  if (!now) return;  // gone: the next signal says so
  // T: stopped; t: stopped by a tracer; D: the SIGSTOP still waits for an
  // uninterruptible sleep to end; Z/X: exiting.
  const bool running = now->state == 'R' || now->state == 'S';
  const bool restarted = first->state == 'T' && running;
  const bool ran = now->cpu_ticks >= first->cpu_ticks + 2;
  if (!restarted && !ran) return;
  ++evasions_total_;
  static const long kTicksPerSecond = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
  const uint64_t ran_ms = ran ? (now->cpu_ticks - first->cpu_ticks) * 1000 / uint64_t(kTicksPerSecond) : 0;
  std::string detail = std::string("it ") +
                       (ran ? "used " + std::to_string(ran_ms) + " ms of CPU"
                            : "was running (state " + std::string(1, now->state) + ")") +
                       " in a SIGSTOP phase of its duty cycle: something sent it SIGCONT";
  spdlog::warn("throttle (signal): pid {} evaded its throttle: {}", c.entry.key.tgid, detail);
  evasions_.push_back(ThrottleEvasion{c.entry.key, std::move(detail)});
}

std::vector<ThrottleEvasion> SignalDutyCycle::take_evasions() {
  std::vector<ThrottleEvasion> out;
  out.swap(evasions_);
  return out;
}

Result<std::string> SignalDutyCycle::throttle(const ProcKey& key, const ThrottleLimits& l) {
  std::string why;
  if (!supports(l, &why)) return Error{EOPNOTSUPP, why};
  uint64_t now = clock_.now_ns();
  auto it = cycles_.find(key);
  if (it != cycles_.end() && it->second.gone)
    return Error{ESRCH, "pid " + std::to_string(key.tgid) + " exited while throttled"};
  if (it == cycles_.end()) {
    Cycle c;
    c.entry.key = key;
    c.entry.limits = l;
    c.start_ns = now;
    c.next_ns = now + run_ns(c);  // runs first, like a process that was just let go
    it = cycles_.emplace(key, c).first;
  } else {
    it->second.entry.limits = l;
    evaluate(it->second, now);
  }
  save();
  std::string detail = "duty cycle: runs " + ms(run_ns(it->second)) + " of every " + ms(period_ns_) + " (cpu " +
                       std::to_string(std::lround(*l.cpu_share * 100)) + "%)";
  spdlog::info("throttle (signal): pid {}: {}", key.tgid, detail);
  return detail;
}

Result<std::string> SignalDutyCycle::release(const ProcKey& key) {
  auto it = cycles_.find(key);
  if (it == cycles_.end()) return Error{ENOENT, "pid " + std::to_string(key.tgid) + " is not throttled (signal)"};
  // Always SIGCONT, even in a run phase: it may have been stopped by a
  // previous daemon, and a stray SIGCONT is harmless.
  std::string detail;
  auto r = signaller_.send(key, SIGCONT);
  if (r.ok()) {
    detail = "SIGCONT sent, duty cycle ended";
  } else if (r.error().code == ESRCH) {
    detail = "pid " + std::to_string(key.tgid) + " had exited, duty cycle ended";
  } else {
    spdlog::warn("throttle (signal): release of pid {} failed: {}", key.tgid, r.error().message);
    return r.error();
  }
  cycles_.erase(it);
  save();
  spdlog::info("throttle (signal): released pid {}: {}", key.tgid, detail);
  return detail;
}

void SignalDutyCycle::tick(uint64_t now_ns) {
  for (auto& [k, c] : cycles_) {
    if (c.gone) continue;
    if (c.check_ns != 0 && now_ns >= c.check_ns && now_ns < c.next_ns) first_look(c);
    if (now_ns >= c.next_ns) evaluate(c, now_ns);
  }
}

uint64_t SignalDutyCycle::next_deadline_ns() const {
  uint64_t next = std::numeric_limits<uint64_t>::max();
  for (const auto& [k, c] : cycles_) {
    if (c.gone) continue;
    next = std::min(next, c.next_ns);
    if (c.check_ns != 0) next = std::min(next, c.check_ns);
  }
  return next;
}

void SignalDutyCycle::release_all() {
  for (const auto& key : throttled_keys()) (void)release(key);
}

void SignalDutyCycle::save() const {
  if (state_path_.empty()) return;
  ThrottleState st{name(), {}};
  for (const auto& [k, c] : cycles_)
    if (!c.gone) st.entries.push_back(c.entry);
  if (auto r = save_throttle_state(state_path_, st); !r.ok())
    spdlog::error("throttle (signal): could not save the table of throttles: {}", r.error().message);
}

void SignalDutyCycle::load() {
  if (state_path_.empty()) return;
  auto st = load_throttle_state(state_path_);
  if (!st.ok()) {
    spdlog::error("throttle (signal): ignoring the saved throttles: {}", st.error().message);
    return;
  }
  if (!st->entries.empty() && st->backend != name()) {
    spdlog::warn("throttle (signal): {} holds throttles of backend {}; they cannot be undone by this one",
                 state_path_, st->backend);
    return;
  }
  uint64_t now = clock_.now_ns();
  bool changed = false;
  for (const auto& e : st->entries) {
    // The previous daemon may have died in a stop phase.
    auto r = signaller_.send(e.key, SIGCONT);
    if (!r.ok()) {
      changed = true;
      spdlog::info("throttle (signal): pid {} of a previous run is gone ({})", e.key.tgid, r.error().message);
      continue;
    }
    Cycle c;
    c.entry = e;
    c.start_ns = now;
    c.next_ns = now + run_ns(c);
    cycles_.emplace(e.key, c);
    spdlog::info("throttle (signal): pid {} is still throttled (from a previous run)", e.key.tgid);
  }
  if (changed) save();
}

}  // namespace fp
