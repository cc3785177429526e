// Renders a snapshot (per-process deltas over an interval) as a table or JSON.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultprobe/abi.h"
#include "probe/delta.h"
#include "procinfo.h"

namespace fp {

struct SnapshotReport {
  uint64_t interval_ns = 0;
  std::array<uint64_t, FP_DROP_NR> drops{};    // drops during the interval, by fp_drop_reason
  std::vector<std::string> unavailable;        // counters whose hooks are missing on this kernel
  std::string io_bytes_from = "task_io_accounting";  // or "submitter" (Probe::io_bytes_from())
  std::vector<ProcDelta> procs;                // sorted by cpu_ns descending
  std::vector<ProcInfo> infos;                 // same order as procs (found=false if unknown)
  nlohmann::json seed;                         // how the processes alive at start got their slots (null: unknown)
};

const char* drop_reason_name(unsigned reason);

nlohmann::ordered_json snapshot_to_json(const SnapshotReport& r);
// A fixed-width table, one row per process, widest useful columns first.
std::string snapshot_to_table(const SnapshotReport& r, size_t max_rows = 0);

}  // namespace fp
