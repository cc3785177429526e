// The throttle of last resort, for hosts where no cgroup cpu controller can
// be used: a SIGSTOP/SIGCONT duty cycle. In every period the process runs
// for share * period, then stays stopped for the rest.
//
// It limits wall-clock time, not CPU time: a single-threaded spinner gets
// `share` of a CPU, a process with N busy threads up to N * share. Only cpu
// can be limited this way (memory, io and pids are refused with a reason).
// Release always sends SIGCONT, so a process never stays stopped by us.
//
// Anyone allowed to signal the process can SIGCONT it (a helper it forked, a
// shell loop). The process is looked at twice in each stop phase: a little
// after the SIGSTOP, and right before the SIGCONT. It evaded when it was
// stopped ('T') at the first look and is not at the second, or when it used
// CPU time in between (at least two clock ticks: a process on a busy host
// may take a while to act on the SIGSTOP, but it does not run once it has).
// An evasion is reported (take_evasions(): the handler escalates); the duty
// cycle goes on.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "act/throttle.h"
#include "act/throttle_state.h"

namespace fp {

class SignalDutyCycle : public ThrottleBackend {
 public:
  // state_path: the JSON table of throttles ("" = not persisted). Processes
  // found there get SIGCONT (a previous daemon may have died with them
  // stopped) and their duty cycle starts over; the ones gone are dropped.
  // state_of: the process's /proc state letter ('T' stopped, 'R', 'S', ...)
  // and its CPU time in clock ticks, nullopt when it is gone; default:
  // /proc/PID/stat of exactly that process.
  struct RunState {
    char state = '?';
    uint64_t cpu_ticks = 0;
  };
  using StateReader = std::function<std::optional<RunState>(const ProcKey&)>;
  SignalDutyCycle(Signaller& signaller, Clock& clock, uint64_t period_ns = 1'000'000'000ull,
                  std::string state_path = "", StateReader state_of = {});

  const char* name() const override { return "signal"; }
  bool supports(const ThrottleLimits& l, std::string* why) const override;
  Result<std::string> throttle(const ProcKey& key, const ThrottleLimits& l) override;
  // SIGCONT and forget. A process that exited is released without error.
  Result<std::string> release(const ProcKey& key) override;
  bool throttled(const ProcKey& key) const override { return cycles_.count(key) > 0; }
  std::vector<ProcKey> throttled_keys() const override;
  void tick(uint64_t now_ns) override;
  uint64_t next_deadline_ns() const override;
  void release_all() override;
  std::vector<ThrottleEvasion> take_evasions() override;
  uint64_t evasions() const { return evasions_total_; }

 private:
  struct Cycle {
    ThrottleEntry entry;
    uint64_t start_ns = 0;  // beginning of the first period (a run phase)
    uint64_t next_ns = 0;   // next phase change
    bool stopped = false;   // what we last made it
    bool gone = false;      // a signal found it exited: kept (without ticks) until release
    uint64_t check_ns = 0;  // stop phase: when to take the first look (0: taken)
    std::optional<RunState> first;  // the first look of this stop phase
  };
  uint64_t run_ns(const Cycle& c) const;
  // Puts the process in the phase `now` falls in and schedules the next change.
  void evaluate(Cycle& c, uint64_t now);
  // The first look of a stop phase, and the last (before the SIGCONT):
  // found running -> an evasion, stopped again.
  void first_look(Cycle& c);
  void last_look(Cycle& c);
  void save() const;
  void load();

  Signaller& signaller_;
  Clock& clock_;
  uint64_t period_ns_;
  std::string state_path_;
  std::map<ProcKey, Cycle> cycles_;
  StateReader state_of_;
  std::vector<ThrottleEvasion> evasions_;
  uint64_t evasions_total_ = 0;
};

}  // namespace fp
