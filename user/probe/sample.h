// What one read of the probe returns: the live processes' cumulative counters
// and the discrete events that arrived since the previous read.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

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
  ProcKey victim;
  std::string comm;
  uint64_t total_vm_kb = 0, anon_rss_kb = 0, file_rss_kb = 0, shmem_rss_kb = 0;
};

struct HangRecord {
  uint64_t ts_ns = 0;
  ProcKey proc;
  std::string comm;
  uint32_t tid = 0;
  uint64_t dstate_since_ns = 0;
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
  void clear() { exits.clear(); signals.clear(); ooms.clear(); hangs.clear(); }
};

}  // namespace fp
