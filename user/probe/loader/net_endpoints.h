// Reads the probe's (process, remote endpoint) network counters
// (bpf/net.bpf.c) for the network detectors' evidence. Iterates the LRU
// map (at most FP_DEFAULT_NET_ENDPOINTS entries): called when a finding is
// made, not every tick.
#pragma once

#include <cstdint>
#include <vector>

#include "detect/net_endpoints.h"

namespace fp {

class NetEndpointReader final : public NetEndpointSource {
 public:
  // `map_fd`: Probe::net_endpoints_fd() (not owned; must be >= 0).
  explicit NetEndpointReader(int map_fd) : fd_(map_fd) {}
  bool read(const ProcKey& proc, std::vector<NetEndpoint>& out) override;

 private:
  int fd_;
};

}  // namespace fp
