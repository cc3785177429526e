#include "probe/loader/net_endpoints.h"

#include <bpf/bpf.h>

#include <cerrno>
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
  // One batch read of the whole map (v5.6+): a handful of syscalls.
  if (batch_) {
    keys_.resize(FP_DEFAULT_NET_ENDPOINTS);
    values_.resize(FP_DEFAULT_NET_ENDPOINTS);
    fp_net_ep_key token{}, next{};
    bool first = true, done = false;
    while (!done) {
      __u32 count = FP_DEFAULT_NET_ENDPOINTS;
      int r = bpf_map_lookup_batch(fd_, first ? nullptr : &token, &next, keys_.data(), values_.data(), &count,
                                   nullptr);
      if (r != 0 && errno != ENOENT) {
        if (first) break;  // refused: walk the keys below
        return false;
      }
      done = r != 0;
      for (__u32 i = 0; i < count; ++i) add(proc, keys_[i], values_[i], out);
      token = next;
      first = false;
    }
    if (!first) return true;
    batch_ = false;
    out.clear();
  }
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
    add(proc, key, v, out);
  }
  return true;
}

}  // namespace fp
