// What the probe counted about itself: drops by reason, map occupancy, and
// which hooks (hence counters and hardware sources) this kernel gave it.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "probe/probe.h"

namespace fp {

DropCounts Probe::drops() const {
  DropCounts total{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return total;
  std::vector<uint64_t> vals(static_cast<size_t>(ncpu), 0);
  int fd = fds_.drops;
  for (uint32_t r = 0; r < FP_DROP_NR; r++) {
    if (bpf_map_lookup_elem(fd, &r, vals.data())) continue;
    for (auto v : vals) total[r] += v;
  }
  // and the events no resolver walk could charge (net_resolve.cpp)
  total[FP_DROP_NET_UNOWNED] += net_resolve_.unresolved_events;
  total[FP_DROP_HOOK_NESTED] += hook_runs_skipped();
  return total;
}

uint64_t Probe::hook_runs_skipped() const {
  uint64_t n = 0;
  for (int fd : hook_prog_fds_) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) n += info.recursion_misses;
  }
  return n;
}

namespace {
size_t count_keys(int fd, size_t key_size) {
  std::vector<uint8_t> key(key_size), next(key_size);
  size_t n = 0;
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    n++;
    key = next;
    prev = key.data();
  }
  return n;
}
}  // namespace

size_t Probe::proc_index_entries() const { return count_keys(fds_.proc_index, 4); }
size_t Probe::thread_entries() const { return count_keys(fds_.threads, 4); }
Probe::InflightCounts Probe::inflight_io_entries() const {
  InflightCounts c;
  c.hash = count_keys(fds_.inflight_io, 8);
  // inflight_rq: an array whose entries start with the request that owns them (0: free)
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (fds_.inflight_rq < 0 || bpf_obj_get_info_by_fd(fds_.inflight_rq, &info, &len) != 0 ||
      info.value_size < sizeof(uint64_t))
    return c;
  std::vector<unsigned char> v(info.value_size);
  for (uint32_t i = 0; i < info.max_entries; i++) {
    uint64_t key = 0;
    if (bpf_map_lookup_elem(fds_.inflight_rq, &i, v.data()) != 0) continue;
    std::memcpy(&key, v.data(), sizeof(key));
    if (key != 0) c.array++;
  }
  return c;
}
bool Probe::indexed(uint32_t tgid) const {
  uint32_t slot = 0;
  return bpf_map_lookup_elem(fds_.proc_index, &tgid, &slot) == 0;
}

std::vector<std::string> Probe::unavailable_counters() const {
  auto out = fp::unavailable_counters(hooks_);
  if (!task_io_)
    out.push_back("io_read_bytes, io_write_bytes by task (no task IO accounting: they are the submitter's bytes, "
                  "a buffered write is the flusher's)");
  return out;
}

std::vector<HwSourceStatus> Probe::hardware_sources() const { return fp::hardware_sources(hooks_); }

}  // namespace fp
