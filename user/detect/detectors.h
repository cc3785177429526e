// Factories of the built-in detectors, one per fault class. make_detector()
// (detect/registry.cpp) dispatches on the rule's class; no static
// registration magic.
#pragma once

#include <memory>

#include "detect/detector.h"

namespace fp {

// Threshold detectors (detect/detectors_threshold.cpp and friends).
std::unique_ptr<Detector> make_cpu_runaway(const RuleConfig& r);
std::unique_ptr<Detector> make_runq_starvation(const RuleConfig& r);
std::unique_ptr<Detector> make_memory_leak(const RuleConfig& r);
std::unique_ptr<Detector> make_memory_pressure(const RuleConfig& r);
std::unique_ptr<Detector> make_io_storm(const RuleConfig& r);
std::unique_ptr<Detector> make_io_latency(const RuleConfig& r);
std::unique_ptr<Detector> make_fork_bomb(const RuleConfig& r);
std::unique_ptr<Detector> make_anomaly(const RuleConfig& r);
// Host-wide pressure (detect/detectors_pressure.cpp): PSI or utilisation of a resource.
std::unique_ptr<Detector> make_host_pressure(const RuleConfig& r);
// Log lines matching a [[logwatch]] pattern (detect/detectors_app.cpp).
std::unique_ptr<Detector> make_app_errors(const RuleConfig& r);
// Network, per process (detect/detectors_net.cpp): TCP retransmits, failed connects, drops.
std::unique_ptr<Detector> make_net_retransmits(const RuleConfig& r);
std::unique_ptr<Detector> make_net_connect_failures(const RuleConfig& r);
std::unique_ptr<Detector> make_net_drops(const RuleConfig& r);

// Event-driven detectors (detect/detectors_event.cpp).
std::unique_ptr<Detector> make_oom_kill(const RuleConfig& r);
std::unique_ptr<Detector> make_io_error(const RuleConfig& r);
std::unique_ptr<Detector> make_crash(const RuleConfig& r);
std::unique_ptr<Detector> make_crash_loop(const RuleConfig& r);
std::unique_ptr<Detector> make_hang(const RuleConfig& r);
// The kernel's own error reports (detect/detectors_kernel.cpp): KFENCE, KASAN, WARN.
std::unique_ptr<Detector> make_kernel_error(const RuleConfig& r);

// Hardware detectors (detect/detectors_hw.cpp): hw_mce, hw_memory_error,
// hw_pcie_error, hw_disk_error from probe events; hw_thermal, hw_voltage
// from hwmon scans (and thermal zone events).
std::unique_ptr<Detector> make_hw_event(const RuleConfig& r);
std::unique_ptr<Detector> make_hw_sensor(const RuleConfig& r);

// Shared by detectors: whether a process may be named as culprit (not pid 1,
// not a kernel thread, not faultprobe itself, not a protected comm), and
// whether it passes a rule's match.
bool may_blame(const ProcState& s, const World& w);
bool rule_matches(const RuleConfig& r, const ProcState& s, const World& w);

}  // namespace fp
