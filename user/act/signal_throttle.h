// The throttle of last resort, for hosts where no cgroup cpu controller can
// be used: a SIGSTOP/SIGCONT duty cycle. In every period the process runs
// for share * period, then stays stopped for the rest.
//
// It limits wall-clock time, not CPU time: a single-threaded spinner gets
// `share` of a CPU, a process with N busy threads up to N * share. Only cpu
// can be limited this way (memory, io and pids are refused with a reason).
// Release always sends SIGCONT, so a process never stays stopped by us.
#pragma once

#include <map>
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
  SignalDutyCycle(Signaller& signaller, Clock& clock, uint64_t period_ns = 1'000'000'000ull,
                  std::string state_path = "");

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

 private:
  struct Cycle {
    ThrottleEntry entry;
    uint64_t start_ns = 0;  // beginning of the first period (a run phase)
    uint64_t next_ns = 0;   // next phase change
    bool stopped = false;   // what we last made it
    bool gone = false;      // a signal found it exited: kept (without ticks) until release
  };
  uint64_t run_ns(const Cycle& c) const;
  // Puts the process in the phase `now` falls in and schedules the next change.
  void evaluate(Cycle& c, uint64_t now);
  void save() const;
  void load();

  Signaller& signaller_;
  Clock& clock_;
  uint64_t period_ns_;
  std::string state_path_;
  std::map<ProcKey, Cycle> cycles_;
};

}  // namespace fp
