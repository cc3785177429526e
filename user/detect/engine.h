// The detection engine: the process table, one detector per enabled rule and
// the fault tracker, driven one tick at a time by the daemon (or a test).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "detect/detector.h"
#include "detect/fault.h"
#include "detect/process_table.h"
#include "detect/systemd_unit.h"
#include "detect/tracker.h"
#include "probe/sample.h"
#include "procinfo.h"

namespace fp {

// The container id in a cgroup path: a 64-hex-digit id as docker
// (docker-<id>.scope, /docker/<id>), containerd (cri-containerd-<id>.scope),
// CRI-O (crio-<id>.scope) and podman (libpod-<id>.scope) write it; the last
// one in the path, "" if none.
std::string container_of_cgroup(std::string_view cgroup);

// What /proc said about a process, if it can be trusted to be about this
// process: ProcInfoCache reads /proc/PID the first time it is asked, which
// for a process that already exited may be nothing or a new owner of the
// pid. For an exited process the comm must agree with the probe's.
const ProcInfo* trusted_info(const ProcState& s, ProcInfoSource* infos);

class Engine {
 public:
  Engine(Config cfg, HostInfo host, ProcInfoSource& infos, uint32_t self_tgid);

  // One sampling tick at `now_ns` (CLOCK_MONOTONIC): the slots the probe
  // reported changed and the events drained since the previous tick.
  // Returns the fault and resolved records decided at this tick (and those
  // a reload() left to emit).
  //
  // `changed` names each slot by its index (Probe::refresh()) with a copy
  // of it (Probe::changed_copies()), read during this call only: a slot that
  // turns free (tgid 0) or changes owner tells the engine its previous
  // process is gone even when the exit event was lost (ring buffer full), so
  // a stale copy never keeps a fault (a "hang" of a process that no longer
  // exists) open.
  //
  // `decided`, if given, sees each record as soon as its rule decided it,
  // before the remaining rules run (the daemon publishes a crash then, not
  // after every threshold detector); the event-driven rules run first.
  std::vector<FaultRecord> tick(uint64_t now_ns, const std::vector<SlotChange>& changed,
                                const EventBatch& events,
                                const std::function<void(const FaultRecord&)>& decided = {});

  // Swaps in a new configuration: detectors are rebuilt (their windows and
  // baselines start over). Open faults of rules that still exist (same name,
  // same class, enabled) stay open; those of removed or disabled rules
  // resolve with evidence {"reason": "rule removed"}, emitted by the next tick().
  void reload(const Config& cfg);

  // Open faults a previous daemon instance left (see FaultTracker::adopt):
  // those of rules that no longer exist (or changed class) are dropped.
  // Returns how many were taken over.
  size_t adopt_open_faults(const std::vector<FaultRecord>& open, uint64_t now_ns);

  // Where runq_starvation learns who held a victim's CPU (World::runq_blame); not owned.
  void set_runq_blame(RunqBlameSource* src) { runq_blame_ = src; }
  // Where memory_leak's forecast learns the memory left to a process (World::memory_budget); not owned.
  void set_memory_budget(MemoryBudgetSource* src) { memory_budget_ = src; }
  // Where runq_starvation learns how long a CPU quota held a process (World::cpu_quota); not owned.
  void set_cpu_quota(CpuQuotaSource* src) { cpu_quota_ = src; }
  // Where host_pressure reads the host's pressure (World::pressure); not owned.
  void set_pressure(const HostPressure* p) { pressure_ = p; }
  void set_cgroup_pressure(const CgroupPressureSource* p) { cgroup_pressure_ = p; }
  // Where app_errors reads the lines its [[logwatch]] matched (World::logs); not owned.
  void set_logs(const LogMatchSource* logs) { logs_ = logs; }
  // Where the network detectors name remote endpoints (World::net_endpoints); not owned.
  void set_net_endpoints(NetEndpointSource* src) { net_endpoints_ = src; }
  // Where net_drops names the drop reasons (World::net_drop_reasons); not owned.
  void set_net_drop_reasons(NetDropReasonSource* src) { net_drop_reasons_ = src; }
  // How kernel_error names the kernel's error detectors (World::error_detectors); not owned.
  void set_error_detector_names(const ErrorDetectorNames* names) { error_detectors_ = names; }

  std::vector<FaultRecord> open_faults() const { return tracker_.open_faults(); }
  const ProcessTable& table() const { return table_; }
  const Config& config() const { return cfg_; }
  // How protected_comms finds a live process's executable (tests inject one;
  // default: /proc).
  void set_exe_lookup(Protection::ExeLookup lookup) { protection_ = Protection(cfg_.protected_comms, std::move(lookup)); }

 private:
  void build_detectors();
  void annotate(FaultRecord& r) const;
  bool blameable(const ProcKey& k, const World& w) const;

  Config cfg_;
  HostInfo host_;
  ProcInfoSource& infos_;
  uint32_t self_tgid_;
  Protection protection_;
  RunqBlameSource* runq_blame_ = nullptr;
  MemoryBudgetSource* memory_budget_ = nullptr;
  CpuQuotaSource* cpu_quota_ = nullptr;
  const HostPressure* pressure_ = nullptr;
  const CgroupPressureSource* cgroup_pressure_ = nullptr;
  const LogMatchSource* logs_ = nullptr;
  NetEndpointSource* net_endpoints_ = nullptr;
  NetDropReasonSource* net_drop_reasons_ = nullptr;
  const ErrorDetectorNames* error_detectors_ = nullptr;
  ProcessTable table_;
  FaultTracker tracker_;
  std::vector<std::unique_ptr<Detector>> detectors_;
  std::vector<FaultRecord> deferred_;  // resolved by reload(), out with the next tick
  std::vector<Finding> findings_;      // scratch, reused every tick
  std::vector<ProcKey> slot_owner_;  // by slot index: the process the slot held (tgid 0: none)
};

}  // namespace fp
