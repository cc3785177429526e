// Reads the probe's per-CPU run-queue blame tables (bpf/runq_blame.bpf.h)
// for the starvation localizer: one lookup returns every CPU's table.
#pragma once

#include <cstdint>
#include <vector>

#include "detect/locate_runq.h"
#include "faultprobe/abi.h"

namespace fp {

class RunqBlameReader final : public RunqBlameSource {
 public:
  // `map_fd`: Probe::runq_blame_fd() (not owned; must be >= 0).
  explicit RunqBlameReader(int map_fd);

  // Every CPU's charged processes, and per CPU the waits charged to nobody (tgid 0).
  bool read(std::vector<RunqBlameEntry>& out) override;

 private:
  int fd_;
  std::vector<fp_runq_cpu> cpus_;  // one per possible CPU, as the kernel copies them out
};

}  // namespace fp
