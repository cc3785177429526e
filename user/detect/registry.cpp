// make_detector(): the one place that knows which factory builds which class.
// Plus the checks every detector shares: who may be blamed, who a rule covers.
#include <fnmatch.h>

#include <algorithm>

#include "detect/detectors.h"
#include "detect/engine.h"

namespace fp {

std::unique_ptr<Detector> make_detector(const RuleConfig& rule) {
  switch (rule.cls) {
    case FaultClass::CpuRunaway: return make_cpu_runaway(rule);
    case FaultClass::RunqStarvation: return make_runq_starvation(rule);
    case FaultClass::MemoryLeak: return make_memory_leak(rule);
    case FaultClass::MemoryPressure: return make_memory_pressure(rule);
    case FaultClass::OomKill: return make_oom_kill(rule);
    case FaultClass::IoStorm: return make_io_storm(rule);
    case FaultClass::IoLatency: return make_io_latency(rule);
    case FaultClass::IoError: return make_io_error(rule);
    case FaultClass::Crash: return make_crash(rule);
    case FaultClass::CrashLoop: return make_crash_loop(rule);
    case FaultClass::Hang: return make_hang(rule);
    case FaultClass::ForkBomb: return make_fork_bomb(rule);
    case FaultClass::Anomaly: return make_anomaly(rule);
    case FaultClass::HostPressure: return make_host_pressure(rule);
    case FaultClass::AppErrors: return make_app_errors(rule);
    case FaultClass::NetRetransmits: return make_net_retransmits(rule);
    case FaultClass::NetConnectFailures: return make_net_connect_failures(rule);
    case FaultClass::NetDrops: return make_net_drops(rule);
    case FaultClass::KernelError: return make_kernel_error(rule);
    case FaultClass::HwMce:
    case FaultClass::HwMemoryError:
    case FaultClass::HwPcieError:
    case FaultClass::HwDiskError: return make_hw_event(rule);
    case FaultClass::HwThermal:
    case FaultClass::HwVoltage: return make_hw_sensor(rule);
  }
  return nullptr;
}

bool may_blame(const ProcState& s, const World& w) {
  if (s.key.tgid == 0 || s.key.tgid == 1) return false;
  if ((s.flags & FP_PROC_KTHREAD) != 0) return false;
  if (w.self_tgid != 0 && s.key.tgid == w.self_tgid) return false;
  // By name and executable, while it runs: a process that named itself like
  // a protected one is blamed (its fault says so, Engine::annotate), and one
  // that is gone cannot be checked, so its crash is reported.
  if (w.protection != nullptr && !s.exited && w.protection->protects(s.key, s.comm)) return false;
  return true;
}

namespace {

bool glob(const std::string& pattern, const std::string& text) {
  return ::fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

}  // namespace

bool rule_matches(const RuleConfig& r, const ProcState& s, const World& w) {
  const ProcessMatch& m = r.match;
  if (m.empty()) return true;
  if (m.comm && !glob(*m.comm, s.comm)) return false;
  if (!m.exe && !m.cgroup && !m.unit && !m.uid) return true;
  // The rest is only known from /proc; a process we cannot vouch for does not match.
  const ProcInfo* info = trusted_info(s, w.infos);
  if (info == nullptr) return false;
  if (m.exe && !glob(*m.exe, info->exe)) return false;
  if (m.cgroup && !glob(*m.cgroup, info->cgroup)) return false;
  if (m.unit) {
    // Rules name system units; a user unit's name is the user's to choose.
    SystemdUnit unit = systemd_unit_of(info->cgroup);
    if (unit.user || !glob(*m.unit, unit.name)) return false;
  }
  if (m.uid && *m.uid != info->uid) return false;
  return true;
}

}  // namespace fp
