#include "probe/loader/runq_blame.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

namespace fp {

// A per-CPU value comes out rounded up to 8 bytes per CPU: fp_runq_cpu is a
// multiple of 8 (abi.h), so a vector of them is the kernel's layout.
static_assert(sizeof(fp_runq_cpu) % 8 == 0);

RunqBlameReader::RunqBlameReader(int map_fd) : fd_(map_fd) {
  int n = libbpf_num_possible_cpus();
  cpus_.resize(n > 0 ? size_t(n) : 1);
}

bool RunqBlameReader::read(std::vector<RunqBlameEntry>& out) {
  out.clear();
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(fd_, &key, cpus_.data()) != 0) return false;
  for (uint32_t cpu = 0; cpu < cpus_.size(); cpu++) {
    const fp_runq_cpu& c = cpus_[cpu];
    if (c.unknown_ns != 0) out.push_back(RunqBlameEntry{.cpu = cpu, .caused_ns = c.unknown_ns});
    for (const fp_runq_slot& s : c.slot) {
      if (s.tgid == 0) continue;
      out.push_back(RunqBlameEntry{.cpu = cpu,
                                   .tgid = s.tgid,
                                   .caused_ns = s.caused_ns,
                                   .waited_ns = s.waited_ns,
                                   .waits = s.waits,
                                   .tid = s.tid,
                                   .policy = s.policy,
                                   .rt_priority = s.rt_priority,
                                   .static_prio = s.static_prio});
    }
  }
  return true;
}

}  // namespace fp
