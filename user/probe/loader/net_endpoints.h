// Reads the probe's (process, remote endpoint) network counters
// (bpf/net.bpf.c) for the network detectors' evidence. Iterates the LRU
// map (at most FP_DEFAULT_NET_ENDPOINTS entries) in batches, by key where
// the kernel refuses batches: the detectors read it at most once a second
// per process with a finding.
#pragma once

#include <cstdint>
#include <vector>

#include "detect/net_endpoints.h"
#include "faultprobe/abi.h"
#include "probe/loader/proc_map_reader.h"

namespace fp {

class NetEndpointReader final : public NetEndpointSource {
 public:
  // `map_fd`: Probe::net_endpoints_fd() (not owned; must be >= 0).
  explicit NetEndpointReader(int map_fd) : map_(map_fd, FP_DEFAULT_NET_ENDPOINTS) {}
  bool read(const ProcKey& proc, std::vector<NetEndpoint>& out) override;

 private:
  ProcMapReader<fp_net_ep_key, fp_net_ep> map_;
};

}  // namespace fp
