// Seeding: every process alive when the probe starts gets its slot before
// the first sample, at load and at takeover. The hooks only meet a process
// when it runs, so without this one that sleeps through the start is
// missing from every view and a hang older than the probe is never seen.
//
// Two methods, chosen like the hooks' attach modes and shown in `status`:
//  - task_iter: a BPF task iterator (bpf/seed.bpf.c) gives every process its
//    slot and every thread its state as the hooks would at first sight, and
//    marks a thread asleep in D from when that sleep began; the /proc walk
//    then adds any process the iterator did not visit;
//  - proc: where the kernel lacks what the iterator needs, a walk of /proc
//    gives every process its slot (identity, name, resident set). Threads
//    then meet the hooks at first sight as before, and a D-state that began
//    before the probe is not seen until it ends.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "faultprobe/abi.h"
#include "util/result.h"

struct btf;

namespace fp {

// What ProbeOptions asks for. Auto: the iterator where the kernel has it,
// else the /proc walk. Proc: the walk (to exercise it). None: no seeding
// (processes appear when they first run, as before seeding existed).
enum class SeedMode { Auto, Proc, None };

enum class SeedMethod { None, TaskIter, Proc };
const char* seed_method_name(SeedMethod m);  // "none", "task_iter", "proc"

struct SeedStatus {
  SeedMethod method = SeedMethod::None;
  std::string reason;          // why this method (a fallback says what the kernel lacks)
  bool ok = true;              // false: the pass failed part-way (error says why)
  std::string error;
  fp_seed_stats found{};       // what the pass did (the /proc walk fills tasks, procs, released)
  uint64_t proc_added = 0;     // after the iterator: processes only the /proc walk found
  uint64_t slots_full = 0;     // processes left unseeded for want of a slot
  uint64_t at_ns = 0;          // CLOCK_MONOTONIC when the pass ran
  double duration_ms = 0;
};
nlohmann::json seed_status_json(const SeedStatus& s);

// Why the task iterator cannot be used on this kernel ("" when it can):
// it needs the iter/task target in the kernel's BTF. SeedMode::None loads it
// all the same (a later takeover may seed).
std::string seed_iter_missing(bool kernel_has_task_iter, SeedMode mode);

// Creates a BPF iterator's link (seed_task, net_resolve; pinnable, so a
// takeover runs the same program); `what` names it in the error.
Result<int> create_iter_link(int prog_fd, const char* what);

// One pass of the iterator behind `link_fd`; `stats` is the probe's .bss
// counters (cumulative: the pass's share is the difference).
SeedStatus seed_with_iter(int link_fd, const volatile fp_seed_stats* stats);

// The probe's maps as the /proc walk writes them: a slot is made exactly as
// fp_proc_get_slot makes one (pop a free index, fill it with an odd
// generation, insert tgid -> index with NOEXIST, raise the high-water mark),
// so the probe and the walk never give one process two slots.
struct SeedMaps {
  int proc_slots = -1, proc_index = -1, free_slots = -1;
  uint32_t* hwm = nullptr;  // fp_slots_hwm in a writable mapping of .bss
  uint32_t max_procs = 0;
};
SeedStatus seed_from_proc(const SeedMaps& maps, const std::string& proc_root = "/proc");

}  // namespace fp
