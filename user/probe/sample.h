// What one read of the probe returns: the live processes' cumulative counters
// and the discrete events that arrived since the previous read.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultprobe/abi.h"

namespace fp {

// A process is its tgid and the start time of its group leader: a reused pid
// is a different process.
struct ProcKey {
  uint32_t tgid = 0;
  uint64_t start_ns = 0;
  auto operator<=>(const ProcKey&) const = default;
};

inline ProcKey key_of(const fp_proc& p) { return ProcKey{p.tgid, p.start_ns}; }

// A slot the probe reported changed: its index and a copy of it (tgid 0:
// the slot is free now), valid until the probe's next refresh.
struct SlotChange {
  uint32_t slot = 0;
  const fp_proc* proc = nullptr;
};

struct ExitRecord {
  uint64_t ts_ns = 0;     // CLOCK_MONOTONIC
  uint32_t exit_code = 0; // raw: (status << 8) | core 0x80 | signal
  fp_proc final{};        // counters at exit
};

struct SignalRecord {
  uint64_t ts_ns = 0;
  ProcKey target;
  std::string comm;
  uint32_t sig = 0, tid = 0, sender_tgid = 0;
  int32_t result = 0, code = 0;
};

struct OomRecord {
  uint64_t ts_ns = 0;
  ProcKey victim;          // the process, whichever of its threads the kernel marked
  std::string comm;
  uint64_t total_vm_kb = 0, anon_rss_kb = 0, file_rss_kb = 0, shmem_rss_kb = 0;
  uint32_t tid = 0;        // the thread the kernel marked (0: not known)
  uint32_t tgid_from = 0;  // how the process was found from it: FP_OOM_TGID_*
};
// "unresolved", "leader", "current", "sigkill", "proc" for FP_OOM_TGID_*.
const char* oom_tgid_from_name(uint32_t how);

struct HangRecord {
  uint64_t ts_ns = 0;
  ProcKey proc;
  std::string comm;
  uint32_t tid = 0;
  uint64_t dstate_since_ns = 0;
};

// A kernel error report (bpf/kerror.bpf.c: error_report:error_report_end):
// KFENCE/KASAN found a bad access or a WARN fired while `tid` was current.
struct KernelErrorRecord {
  uint64_t ts_ns = 0;
  ProcKey proc;           // the current task's process (tgid 0: none, e.g. the idle task)
  std::string comm;       // its comm (the thread's when the probe had no slot for it)
  uint32_t tid = 0;
  std::string task_comm;  // the current thread's comm
  uint32_t detector = 0;  // the kernel's enum error_detector value
  uint64_t id = 0;        // the bad address (KFENCE/KASAN), the WARN's caller
  uint32_t context = 0;   // FP_KERR_CTX_*
  bool irq_known = false; // the probe could tell interrupt context from task context
};

// A hardware event from the probe, decoded (probe/hw_decode.cpp).
struct HwEvent {
  enum class Source { Mce, Memory, Pcie, Disk, Thermal };
  // Corrected: counted, a burst opens a warning. Uncorrected: critical at
  // once. Info: a reading (thermal zone temperature), judged by level.
  enum class Grade { Info, Corrected, Uncorrected };
  Source source = Source::Mce;
  Grade grade = Grade::Info;
  uint64_t ts_ns = 0;
  ProcKey proc;        // the process affected (tgid 0: none known)
  std::string comm;
  std::string device;  // what failed: "cpu 2 bank 4", "mc0 CPU_SrcID#0_Chan#1_DIMM#0", "0000:03:00.0", "sda"
  uint32_t count = 1;  // errors this event stands for (EDAC's error_count)
  nlohmann::json fields = nlohmann::json::object();  // the decoded payload, for the evidence
};
const char* hw_source_name(HwEvent::Source s);  // "mce", "memory", "pcie", "disk", "thermal"

// One hwmon sensor as the daemon read it (probe/hwmon.cpp).
struct SensorReading {
  enum class Kind { Temperature, Voltage };
  Kind kind = Kind::Temperature;
  std::string sensor;  // "coretemp/temp1" (the chip's name, the channel)
  std::string label;   // tempN_label, "" if none
  std::string path;    // the _input file
  double value = 0;    // degrees C or volts
  std::optional<double> lcrit, min, max, crit;
};

struct Sample {
  uint64_t ts_ns = 0;             // CLOCK_MONOTONIC when the read began
  std::vector<fp_proc> procs;     // live processes, consistent copies
};

// Discrete events drained from the ring buffer.
struct EventBatch {
  std::vector<ExitRecord> exits;
  std::vector<SignalRecord> signals;
  std::vector<OomRecord> ooms;
  std::vector<HangRecord> hangs;
  std::vector<HwEvent> hw;
  std::vector<KernelErrorRecord> kernel_errors;
  // The daemon's hwmon scan, when one ran since the last tick.
  bool sensors_scanned = false;
  std::vector<SensorReading> sensors;
  void clear() {
    exits.clear();
    signals.clear();
    ooms.clear();
    hangs.clear();
    hw.clear();
    kernel_errors.clear();
    sensors_scanned = false;
    sensors.clear();
  }
};

}  // namespace fp
