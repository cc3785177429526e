#include "daemon/limits_status.h"

namespace fp {

nlohmann::json limits_status(const LimitsInputs& in) {
  nlohmann::json j;
  const auto& p = in.procinfo;
  j["procinfo_cache"] = {{"entries", p.entries},
                         {"bytes", p.bytes},
                         {"max_bytes", p.max_bytes},
                         {"evicted", p.evicted},
                         {"cmdline_truncated", p.cmdline_truncated}};
  if (in.server) {
    const auto st = in.server->stats();
    const auto& o = in.server->options();
    j["event_backlog"] = {{"bytes", st.backlog_bytes},
                          {"max_bytes", o.max_backlog_bytes},
                          {"max_events", o.backlog_events},
                          {"dropped", st.backlog_dropped}};
    j["socket_output"] = {{"bytes", st.outbuf_bytes},
                          {"max_bytes", o.max_total_outbuf},
                          {"per_follower_max_bytes", o.max_outbuf},
                          {"dropped", st.dropped_memory}};
    j["socket_clients"] = {{"now", st.clients_now},
                           {"max", o.max_clients},
                           {"idle_timeout_s", double(o.idle_timeout.count()) / 1e3},
                           {"dropped_idle", st.dropped_idle},
                           {"dropped_slow", st.dropped_slow},
                           {"refused", st.refused}};
  }
  if (in.respawn) {
    const auto& r = *in.respawn;
    j["respawn_specs"] = {{"entries", r.entries},
                          {"bytes", r.bytes},
                          {"max_bytes", r.max_bytes},
                          {"max_spec_bytes", kMaxSpawnSpecBytes},
                          {"evicted", r.evicted},
                          {"refused_oversize", r.oversize}};
  }
  j["records_failed"] = in.records_failed;
  j["ticks_failed"] = in.ticks_failed;
  return j;
}

}  // namespace fp
