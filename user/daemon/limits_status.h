// `faultprobe status` section "limits": every bound on memory that users'
// processes and clients can push against, what it holds now and what it
// dropped to stay under (README, "Security": what each one defends against).
#pragma once

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "act/respawn.h"
#include "procinfo.h"
#include "server/server.h"

namespace fp {

struct LimitsInputs {
  ProcInfoCache::Stats procinfo;
  const SocketServer* server = nullptr;  // null: no socket
  uint64_t records_failed = 0;           // records an exception kept from going out
  uint64_t ticks_failed = 0;
  std::optional<RespawnRegistry::Stats> respawn;  // captured respawn specs (none without handling)
};

nlohmann::json limits_status(const LimitsInputs& in);

}  // namespace fp
