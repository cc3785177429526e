// Human-readable text for what the socket API returns: `faultprobe status`
// and `faultprobe events` without --json. Generic over the JSON so that a
// field the daemon adds shows up without a CLI change.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace fp {

// The status document as titled sections. Known sections come first in a
// fixed order (daemon, probe, maps, drops, rules, policies, services, actions,
// criu, syslog, metrics, socket), the rest after them by name. Keys ending in
// _bytes and _ns are shown with units.
std::string status_to_text(const nlohmann::json& status);

// One event-stream record on one line: time, kind, class, pid, comm, then a
// short summary (evidence of a fault, what an action did, how long a fault
// lasted). At most `width` characters (0: no limit).
std::string event_to_text(const nlohmann::json& event, size_t width = 200);

}  // namespace fp
