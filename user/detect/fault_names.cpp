// Names of fault classes and severities: the words of the event stream, the
// config file ([rules.cpu_runaway], severity = "critical") and syslog. One
// table per enum so a name and its parse can never disagree.
// (fault_to_json lives with the event-stream code, not here.)
#include <array>
#include <utility>

#include "detect/fault_class.h"

namespace fp {
namespace {

constexpr std::array<std::pair<FaultClass, const char*>, 25> kClassNames{{
    {FaultClass::CpuRunaway, "cpu_runaway"},
    {FaultClass::RunqStarvation, "runq_starvation"},
    {FaultClass::MemoryLeak, "memory_leak"},
    {FaultClass::MemoryPressure, "memory_pressure"},
    {FaultClass::OomKill, "oom_kill"},
    {FaultClass::IoStorm, "io_storm"},
    {FaultClass::IoLatency, "io_latency"},
    {FaultClass::IoError, "io_error"},
    {FaultClass::Crash, "crash"},
    {FaultClass::CrashLoop, "crash_loop"},
    {FaultClass::Hang, "hang"},
    {FaultClass::ForkBomb, "fork_bomb"},
    {FaultClass::Anomaly, "anomaly"},
    {FaultClass::HostPressure, "host_pressure"},
    {FaultClass::AppErrors, "app_errors"},
    {FaultClass::NetRetransmits, "net_retransmits"},
    {FaultClass::NetConnectFailures, "net_connect_failures"},
    {FaultClass::NetDrops, "net_drops"},
    {FaultClass::KernelError, "kernel_error"},
    {FaultClass::HwMce, "hw_mce"},
    {FaultClass::HwMemoryError, "hw_memory_error"},
    {FaultClass::HwPcieError, "hw_pcie_error"},
    {FaultClass::HwDiskError, "hw_disk_error"},
    {FaultClass::HwThermal, "hw_thermal"},
    {FaultClass::HwVoltage, "hw_voltage"},
}};
static_assert(kClassNames.size() == std::size(kAllFaultClasses), "every fault class needs a name");

constexpr std::array<std::pair<Severity, const char*>, 2> kSeverityNames{{
    {Severity::Warning, "warning"},
    {Severity::Critical, "critical"},
}};

}  // namespace

const char* fault_class_name(FaultClass c) {
  for (const auto& [cls, name] : kClassNames)
    if (cls == c) return name;
  return "unknown";
}

// Exact, case-sensitive: the names are identifiers (TOML keys are case-sensitive too).
std::optional<FaultClass> parse_fault_class(std::string_view name) {
  for (const auto& [cls, n] : kClassNames)
    if (name == n) return cls;
  return std::nullopt;
}

const char* severity_name(Severity s) {
  for (const auto& [sev, name] : kSeverityNames)
    if (sev == s) return name;
  return "unknown";
}

std::optional<Severity> parse_severity(std::string_view name) {
  for (const auto& [sev, n] : kSeverityNames)
    if (name == n) return sev;
  return std::nullopt;
}

}  // namespace fp
