// Why a process's packets were dropped: the probe counts drops per (process,
// enum skb_drop_reason) (bpf/net.bpf.c, an LRU map); the net_drops detector
// reads them when it reports, to name the reasons that account for most of
// it ("NEIGH_QUEUEFULL 312, SOCKET_RCVBUFF 40").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "probe/sample.h"

namespace fp {

struct NetDropReason {
  uint32_t reason = 0;  // the kernel's enum skb_drop_reason value (its numbers move between kernels)
  std::string name;     // "NEIGH_QUEUEFULL" ("" where the kernel's BTF does not name it)
  uint64_t count = 0;   // packets dropped since the probe first counted one for the process
};

// Where the entries come from (the probe's NetDropReasonReader, a fake in tests).
class NetDropReasonSource {
 public:
  virtual ~NetDropReasonSource() = default;
  // Every reason counted for the process (tgid and start time must match). false: could not read.
  virtual bool read(const ProcKey& proc, std::vector<NetDropReason>& out) = 0;
};

// The name to print: the kernel's name made safe for any log line (letters,
// digits, '_'), or "reason N" without one.
std::string drop_reason_text(const NetDropReason& r);

// The `n` reasons with the most drops, most first: [{"reason": NAME, "drops": N}, ...].
nlohmann::json top_drop_reasons(const std::vector<NetDropReason>& reasons, size_t n);

}  // namespace fp
