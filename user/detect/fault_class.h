// Fault classes and severities with their names: the vocabulary the config
// file, the detectors, the event stream and syslog share. Kept free of the
// fault record (detect/fault.h) so config/ can name a class without pulling
// in the engine's types.
#pragma once

#include <optional>
#include <string_view>

namespace fp {

enum class FaultClass {
  CpuRunaway,
  RunqStarvation,
  MemoryLeak,
  MemoryPressure,
  OomKill,
  IoStorm,
  IoLatency,
  IoError,
  Crash,
  CrashLoop,
  Hang,
  ForkBomb,
  Anomaly,
  HostPressure,
  // A [[logwatch]] rule's pattern matched the lines a process wrote to a log (detect/logwatch.h).
  AppErrors,
  // Network, per process (bpf/net.bpf.c).
  NetRetransmits,
  NetConnectFailures,
  NetDrops,
  // The kernel's own error reports (KFENCE, KASAN, WARN: bpf/kerror.bpf.c), a
  // kernel bug met in some process's context: the record names that process
  // (or none, in interrupt context) without blaming it.
  KernelError,
  // Hardware: the culprit is a device, not a process (FaultRecord::subject).
  HwMce,
  HwMemoryError,
  HwPcieError,
  HwDiskError,
  HwThermal,
  HwVoltage,
};
inline constexpr FaultClass kAllFaultClasses[] = {
    FaultClass::CpuRunaway, FaultClass::RunqStarvation, FaultClass::MemoryLeak, FaultClass::MemoryPressure,
    FaultClass::OomKill,    FaultClass::IoStorm,        FaultClass::IoLatency,  FaultClass::IoError,
    FaultClass::Crash,      FaultClass::CrashLoop,      FaultClass::Hang,       FaultClass::ForkBomb,
    FaultClass::Anomaly,    FaultClass::HostPressure,   FaultClass::AppErrors,  FaultClass::NetRetransmits,
    FaultClass::NetConnectFailures, FaultClass::NetDrops, FaultClass::KernelError, FaultClass::HwMce, FaultClass::HwMemoryError,
    FaultClass::HwPcieError, FaultClass::HwDiskError,   FaultClass::HwThermal,  FaultClass::HwVoltage};

// Hardware classes: pid 0 in the record, the device in `subject` and
// evidence.device, the processes it hurt in `victims`. They do not end when
// a process exits, and policies act on their victims.
inline constexpr bool is_hardware_class(FaultClass c) {
  return c == FaultClass::HwMce || c == FaultClass::HwMemoryError || c == FaultClass::HwPcieError ||
         c == FaultClass::HwDiskError || c == FaultClass::HwThermal || c == FaultClass::HwVoltage;
}

// Classes whose record names a process that is not to blame, or none: the
// engine does not drop their findings for naming a kernel thread, pid 1,
// faultprobe itself or nobody (the actions' safety checks still spare those).
// kernel_error names the process in whose context the kernel reported its
// own bug; the hardware classes name a device.
inline constexpr bool blames_no_process(FaultClass c) { return is_hardware_class(c) || c == FaultClass::KernelError; }

// "cpu_runaway", "runq_starvation", ... (the names of the event stream).
const char* fault_class_name(FaultClass c);
std::optional<FaultClass> parse_fault_class(std::string_view name);

enum class Severity { Warning, Critical };
const char* severity_name(Severity s);
std::optional<Severity> parse_severity(std::string_view name);

}  // namespace fp
