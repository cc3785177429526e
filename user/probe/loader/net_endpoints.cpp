#include "probe/loader/net_endpoints.h"

#include <bpf/bpf.h>

#include <cstring>

#include "faultprobe/abi.h"

namespace fp {

bool NetEndpointReader::read(const ProcKey& proc, std::vector<NetEndpoint>& out) {
  out.clear();
  fp_net_ep_key key{}, next{};
  fp_net_ep v{};
  const void* prev = nullptr;
  // Bounded: an LRU map being written meanwhile may restart the walk.
  for (int i = 0; i < 4 * FP_DEFAULT_NET_ENDPOINTS; ++i) {
    if (bpf_map_get_next_key(fd_, prev, &next) != 0) return true;  // ENOENT: the end
    key = next;
    prev = &key;
    if (key.tgid != proc.tgid || key.start_ns != proc.start_ns) continue;
    if (bpf_map_lookup_elem(fd_, &key, &v) != 0) continue;  // evicted meanwhile
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
    out.push_back(e);
  }
  return true;
}

}  // namespace fp
