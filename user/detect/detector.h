// Detectors turn process histories into findings; the FaultTracker turns
// findings held long enough into opened faults and absent ones into resolved.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "detect/fault.h"
#include "detect/kernel_error.h"
#include "detect/process_table.h"
#include "detect/protection.h"
#include "procinfo.h"

namespace fp {

class RunqBlameSource;  // detect/locate_runq.h
class MemoryBudgetSource;  // detect/memory_budget.h
class CpuQuotaSource;      // detect/cpu_quota.h
struct HostPressure;       // detect/host_pressure.h
class CgroupPressureSource;  // detect/cgroup_pressure.h
class LogMatchSource;        // detect/logwatch.h
class NetEndpointSource;     // detect/net_endpoints.h
class NetDropReasonSource;   // detect/net_drop_reasons.h

// Where detectors get names and cgroups of processes (ProcInfoCache in the
// daemon, a fake in tests).
class ProcInfoSource {
 public:
  virtual ~ProcInfoSource() = default;
  virtual const ProcInfo& info(const ProcKey& k) = 0;
};

struct HostInfo {
  unsigned ncpus = 1;
  uint64_t mem_total_bytes = 0;
  uint64_t page_size = 4096;
};

// Everything a detector sees at one tick.
struct World {
  uint64_t now_ns = 0;              // CLOCK_MONOTONIC
  uint64_t tick_ns = 100'000'000;   // sampling interval
  const ProcessTable* procs = nullptr;
  const EventBatch* events = nullptr;  // events drained this tick
  ProcInfoSource* infos = nullptr;
  HostInfo host;
  uint32_t self_tgid = 0;  // faultprobe's own process: never a culprit
  const Protection* protection = nullptr;  // protected_comms: never culprits (detect/protection.h)
  // Run-queue waits charged per CPU to who ran meanwhile (the probe's, when it
  // has them): runq_starvation's culprits. Null: it blames the top CPU consumer.
  RunqBlameSource* runq_blame = nullptr;
  // The memory left to a process (its memory cgroup's, else the host's):
  // memory_leak's forecast. Null: no forecast, only the slow-leak window.
  MemoryBudgetSource* memory_budget = nullptr;
  // The time a CPU quota held a process off the CPU (detect/cpu_quota.h):
  // runq_starvation's victims are not those held by their own quota. Null:
  // every run-queue wait counts.
  CpuQuotaSource* cpu_quota = nullptr;
  // The host's PSI and utilisation at this tick: host_pressure's input. Null: it sees nothing.
  const HostPressure* pressure = nullptr;
  // Per-cgroup PSI for host_pressure rules that name a group (detect/cgroup_pressure.h). Null: they see nothing.
  const CgroupPressureSource* cgroup_pressure = nullptr;
  // The lines [[logwatch]] rules matched at this tick: app_errors' input. Null: it sees nothing.
  const LogMatchSource* logs = nullptr;
  // The remote endpoints of a process's network trouble (the probe's): the
  // network detectors' evidence. Null: they report without endpoints.
  NetEndpointSource* net_endpoints = nullptr;
  // Why a process's packets were dropped (the probe's counts per kernel drop
  // reason): net_drops' evidence. Null: it reports without reasons.
  NetDropReasonSource* net_drop_reasons = nullptr;
  // The running kernel's names of its error detectors (enum error_detector,
  // from its BTF): kernel_error's evidence. Null: "detector#N".
  const ErrorDetectorNames* error_detectors = nullptr;
};

// A condition that holds at this tick for one culprit.
struct Finding {
  ProcKey culprit;
  // true: above the open threshold. false: only above the resolve threshold
  // (keeps an open fault open, never opens one) -- hysteresis.
  bool strong = true;
  // Event-driven findings open at once, whatever the rule's hold time.
  bool immediate = false;
  Severity severity = Severity::Warning;  // may raise the rule's severity (e.g. kernel hang event)
  std::vector<uint32_t> victims;
  nlohmann::json evidence = nlohmann::json::object();
  // Hardware findings: the device (culprit is {0, 0}) and the victims' identities.
  std::string subject;
  std::vector<ProcKey> victim_keys;
  // A group fault (fork_bomb): it goes on when the process it names exits
  // (it resolves when the findings stop, not at that exit), and `group` lists
  // the group's live members, all of which a group action acts on.
  bool outlives_culprit = false;
  std::vector<ProcKey> group;
};

class Detector {
 public:
  virtual ~Detector() = default;
  virtual const RuleConfig& rule() const = 0;
  // Called every tick, for every rule, so windows stay current.
  virtual void evaluate(const World& w, std::vector<Finding>& out) = 0;
};

// Builds the detector for a rule (one per class; the rule's match filters culprits).
std::unique_ptr<Detector> make_detector(const RuleConfig& rule);

}  // namespace fp
