#include "probe/loader/net_endpoints.h"

#include <cstring>

#include "faultprobe/abi.h"

namespace fp {

namespace {

void add(const ProcKey& proc, const fp_net_ep_key& key, const fp_net_ep& v, std::vector<NetEndpoint>& out) {
  if (key.tgid != proc.tgid || key.start_ns != proc.start_ns) return;
  NetEndpoint e;
  e.proc = proc;
  e.family = key.family;
  e.port = key.dport;
  std::memcpy(e.addr.data(), key.daddr, sizeof key.daddr);
  e.connects = v.connects;
  e.connect_failures = v.connect_failures;
  e.retransmits = v.retransmits;
  e.segs_out = v.segs_out;
  e.resets_sent = v.resets_sent;
  e.resets_received = v.resets_received;
  e.first_ns = v.first_ns;
  e.last_ns = v.last_ns;
  e.last_err = v.last_err;
  e.drops = v.drops;
  out.push_back(e);
}

}  // namespace

bool NetEndpointReader::read(const ProcKey& proc, std::vector<NetEndpoint>& out) {
  out.clear();
  return map_.read(proc, [&](const fp_net_ep_key& k, const fp_net_ep& v) { add(proc, k, v, out); });
}

}  // namespace fp
