// The open faults a daemon keeps across its own restart, in
// <state_dir>/open-faults.json: written whenever the set changes, with the
// boot they belong to (their monotonic times mean nothing after a reboot).
#pragma once

#include <string>
#include <vector>

#include "detect/fault.h"

namespace fp {

// Replaces the file with `open` (mode 0600: it names other users'
// processes). Not synced: it is rewritten at every change of the set, from
// the sampling thread. A failure is logged, and the daemon goes on.
void save_open_faults(const std::string& state_dir, const std::vector<FaultRecord>& open);

// The faults a previous run in this boot left open. None when there is no
// file or it is from another boot; a malformed file is logged and ignored.
std::vector<FaultRecord> load_open_faults(const std::string& state_dir);

}  // namespace fp
