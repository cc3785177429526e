// Reads the probe's (process, drop reason) counts (bpf/net.bpf.c) for the
// net_drops detector's evidence, and names each reason as the running
// kernel does: enum skb_drop_reason's numbers move between kernels (6.1 and
// 6.18 differ), so the names come from its BTF, read once at start.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "detect/net_drop_reasons.h"
#include "faultprobe/abi.h"
#include "probe/loader/proc_map_reader.h"

namespace fp {

using DropReasonNames = std::unordered_map<uint32_t, std::string>;

// enum skb_drop_reason from /sys/kernel/btf/vmlinux, without the
// SKB_DROP_REASON_ prefix (SKB_DROP_REASON_NEIGH_QUEUEFULL -> NEIGH_QUEUEFULL).
// Empty where the kernel's BTF cannot be read or has no such enum (the
// reasons are then printed as numbers).
DropReasonNames kernel_drop_reason_names();

class NetDropReasonReader final : public NetDropReasonSource {
 public:
  // `map_fd`: Probe::net_drop_reasons_fd() (not owned; must be >= 0).
  NetDropReasonReader(int map_fd, DropReasonNames names)
      : map_(map_fd, FP_DEFAULT_NET_DROP_REASONS), names_(std::move(names)) {}
  bool read(const ProcKey& proc, std::vector<NetDropReason>& out) override;

 private:
  void add(const ProcKey& proc, const fp_net_drop_key& key, uint64_t count, std::vector<NetDropReason>& out) const;
  ProcMapReader<fp_net_drop_key, uint64_t> map_;
  DropReasonNames names_;
};

}  // namespace fp
