// The fault state machine: turns each tick's findings into fault records.
// Per (rule name, culprit process):
//   idle --strong finding--> pending --held for rule.hold--> open   (emits "fault")
//   idle --immediate finding-----------------------------> open
//   pending --no strong finding at a tick--> idle                   (a short spike never opens)
//   open --any finding (strong or weak)--> open                     (no repeats; hysteresis)
//   open --no finding for rule.clear--> idle                        (emits "resolved")
//   open --culprit exited--> idle                                   (emits "resolved", reason "process exited";
//                                                                    not for crash/crash_loop/oom_kill,
//                                                                    where the exit is the fault, nor while
//                                                                    a group finding (outlives_culprit) goes on)
// At most one open fault per (rule, culprit, subject). Hardware classes
// (is_hardware_class) never resolve because a process exited. The "fault" line is the
// finding that opened it; while it stays open, the victims of later findings join it
// (up to kMaxVictims; the resolved line lists every victim the fault hurt) and its
// evidence is the latest finding's (open_faults(): what is true now). A fault that
// opens on its first victim (a kernel thread that waited first) still names the
// process that suffers most a tick later.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "config/config.h"
#include "detect/detector.h"
#include "detect/fault.h"
#include "detect/process_table.h"

namespace fp {

class FaultTracker {
 public:
  // Fills in what the tracker does not know about a culprit (comm, cgroup,
  // unit, container) when a fault opens; the resolved record repeats them,
  // so they stay right after the process is gone.
  using Annotate = std::function<void(FaultRecord&)>;
  explicit FaultTracker(Annotate annotate = {}) : annotate_(std::move(annotate)) {}

  // One rule's findings at tick `now_ns`. `table` tells which culprits are
  // gone (exited this tick, or no longer known). Appends records to `out`.
  void step(const RuleConfig& rule, uint64_t now_ns, const std::vector<Finding>& findings,
            const ProcessTable& table, std::vector<FaultRecord>& out);

  // Resolves the open faults (and forgets the pending ones) of every rule
  // `keep` rejects, with evidence {"reason": reason}.
  void retire(const std::function<bool(const std::string& rule, FaultClass cls)>& keep, uint64_t now_ns,
              std::string_view reason, std::vector<FaultRecord>& out);

  // Takes over a fault a previous daemon left open (its record, kind Fault)
  // as if it had just been seen at `now_ns`: it stays open while the rule
  // still finds it and resolves after the rule's clear time otherwise, and
  // no second "fault" line is emitted for it. Returns false (and ignores it)
  // when that (rule, culprit) is already tracked.
  bool adopt(const FaultRecord& open, uint64_t now_ns);

  // The records of the faults open now (kind Fault).
  std::vector<FaultRecord> open_faults() const;
  size_t open_count() const;
  // Whether a class's fault outlives its culprit's exit (crash, crash_loop, oom_kill).
  static bool exit_is_the_fault(FaultClass c);
  // Victims one fault record keeps (the first ones win).
  static constexpr size_t kMaxVictims = 64;

 private:
  struct State {
    bool open = false;
    FaultClass cls = FaultClass::Anomaly;  // the rule's class when the state began
    uint64_t pending_since = 0;  // first tick of the current run of strong findings
    uint64_t last_seen = 0;      // last tick with any finding (open faults)
    FaultRecord record;          // the opening record, its victims grown and evidence refreshed
  };
  // (rule, culprit, subject): hardware faults have no culprit process and
  // are told apart by their device (Finding::subject); "" for the others.
  using Key = std::tuple<std::string, ProcKey, std::string>;

  FaultRecord resolved(const State& s, uint64_t now_ns, std::string_view reason) const;

  Annotate annotate_;
  std::map<Key, State> states_;
};

}  // namespace fp
