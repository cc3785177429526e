#include "probe/net_resolve.h"

namespace fp {

nlohmann::json net_resolve_status_json(const NetResolveStatus& s) {
  nlohmann::json j = {{"walk", s.walk},
                      {"walks", s.walks},
                      {"found", s.found},
                      {"charged", s.charged},
                      {"events_charged", s.events},
                      {"unresolved_sockets", s.unresolved_sockets},
                      {"unresolved_events", s.unresolved_events},
                      {"unresolved_drops", s.unresolved_drops},
                      {"last_ms", s.last_ms},
                      {"max_ms", s.max_ms},
                      {"interval_ms", double(s.interval_ns) / 1e6}};
  if (!s.reason.empty()) j["reason"] = s.reason;
  return j;
}

}  // namespace fp
