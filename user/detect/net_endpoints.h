// The remote endpoints a process's network trouble went to: the probe keeps
// counts per (process, remote address, port) (bpf/net.bpf.c, an LRU map);
// the network detectors read them when they report, to name the peers that
// account for most of it ("40 % of segments to 10.0.0.7:5432 retransmitted").
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "probe/sample.h"

namespace fp {

struct NetEndpoint {
  ProcKey proc;
  uint16_t family = 0;  // AF_INET, AF_INET6
  uint16_t port = 0;
  std::array<uint8_t, 16> addr{};  // network byte order; IPv4 in the first 4 bytes
  uint64_t connects = 0, connect_failures = 0, retransmits = 0, segs_out = 0;
  uint64_t resets_sent = 0, resets_received = 0;
  uint64_t first_ns = 0, last_ns = 0;
  int32_t last_err = 0;  // errno of the latest failed connect
  uint32_t drops = 0;    // packets to or from it dropped with a reason (wraps at 2^32)
};

// Where the entries come from (the probe's NetEndpointReader, a fake in tests).
class NetEndpointSource {
 public:
  virtual ~NetEndpointSource() = default;
  // Every entry of the process (tgid and start time must match). false: could not read.
  virtual bool read(const ProcKey& proc, std::vector<NetEndpoint>& out) = 0;
};

// "10.0.0.7:5432", "[2001:db8::1]:443"; an IPv4-mapped IPv6 peer prints as
// IPv4. Only digits, hex, '.', ':' and brackets: safe in any log line.
std::string endpoint_text(const NetEndpoint& e);
// "ECONNREFUSED", "ETIMEDOUT", ... or the number.
std::string errno_name(int32_t err);

// What a finding's evidence says about the endpoints: the `n` with the most
// `what` ("retransmits", "connect_failures" or "drops"), most first, with their counts.
enum class NetMetric { Retransmits, ConnectFailures, Drops };
nlohmann::json top_endpoints(const std::vector<NetEndpoint>& eps, NetMetric what, size_t n);

}  // namespace fp
