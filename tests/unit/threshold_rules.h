// What the threshold detectors' tests share (test_cpu_runaway.cpp,
// test_runq_starvation.cpp, test_memory_leak.cpp, test_memory_pressure.cpp,
// test_io_storm.cpp, test_io_latency.cpp, test_fork_bomb.cpp,
// test_anomaly.cpp): the built-in rules, and a detector run through the
// fault tracker. The synthetic processes are detect_sim.h's.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "detect/detectors.h"
#include "detect/tracker.h"
#include "detect_sim.h"

namespace fp::sim {

inline RuleConfig rule(FaultClass cls, double threshold, double resolve, std::chrono::nanoseconds window,
                       uint32_t count = 0) {
  RuleConfig r;
  r.cls = cls;
  r.threshold = threshold;
  r.resolve = resolve;
  r.window = window;
  r.count = count;
  return r;
}

// The built-in rules as docs/rules.md lists them.
inline RuleConfig cpu_rule() { return rule(FaultClass::CpuRunaway, 0.9, 0.5, std::chrono::seconds(1)); }
inline RuleConfig runq_rule() { return rule(FaultClass::RunqStarvation, 100, 50, std::chrono::seconds(10), 20); }
inline RuleConfig leak_rule() { return rule(FaultClass::MemoryLeak, 1.0, 0.1, std::chrono::seconds(60)); }
inline RuleConfig pressure_rule() { return rule(FaultClass::MemoryPressure, 0.10, 0.02, std::chrono::seconds(10)); }
inline RuleConfig storm_rule() { return rule(FaultClass::IoStorm, 50, 20, std::chrono::seconds(10), 5); }
inline RuleConfig io_latency_rule() { return rule(FaultClass::IoLatency, 200, 100, std::chrono::seconds(10), 5); }
inline RuleConfig fork_rule() {
  RuleConfig r = rule(FaultClass::ForkBomb, 100, 20, std::chrono::seconds(1));
  r.severity = Severity::Critical;
  return r;
}
inline RuleConfig anomaly_rule() { return rule(FaultClass::Anomaly, 8, 4, std::chrono::seconds(1), 60); }

// A detector's findings through the fault tracker, tick by tick, as the
// engine runs them: when faults opened (the hold applied).
struct WithTracker {
  WithTracker(Sim& sim, RuleConfig r) : s(sim), rule(std::move(r)) {}
  Sim& s;
  RuleConfig rule;
  FaultTracker tracker;
  std::vector<FaultRecord> opened;

  void tick() {
    std::vector<Finding> findings = s.tick();
    std::vector<FaultRecord> out;
    tracker.step(rule, s.now, findings, s.table, out);
    for (FaultRecord& r : out)
      if (r.kind == FaultRecord::Kind::Fault) opened.push_back(std::move(r));
  }
  void run(double seconds) {
    for (int i = 0, n = static_cast<int>(std::llround(seconds * kSec / s.world.tick_ns)); i < n; ++i) tick();
  }
};

}  // namespace fp::sim
