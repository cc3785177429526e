// The daemon's own memory, for `status`: what the kernel counts (RSS by
// kind, from /proc/self/status) and what malloc holds (in use vs free but
// kept). The RSS budget is a target (<= 20 MB at 10,000 processes), and
// this is how a user or a benchmark sees where it goes.
#pragma once

#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

namespace fp {

struct MemoryUsage {
  // /proc/self/status, bytes.
  uint64_t rss = 0, hwm = 0, rss_anon = 0, rss_file = 0, rss_shmem = 0;
  // mallinfo2: bytes handed out, free but kept by malloc, and in mmap-ed chunks.
  uint64_t heap_in_use = 0, heap_free = 0, heap_mmapped = 0;
};

// The Vm* / Rss* lines of a /proc/PID/status text (kB) into `out`, in bytes.
// Lines it does not know are skipped; a missing line leaves its field as is.
void parse_proc_status_memory(std::string_view text, MemoryUsage& out);

// This process now: /proc/self/status and mallinfo2().
MemoryUsage memory_usage();

// The fields as status shows them ({"rss_bytes": .., "hwm_bytes": .., ...}).
nlohmann::json memory_usage_json(const MemoryUsage& m);

}  // namespace fp
