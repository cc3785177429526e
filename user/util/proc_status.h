// Fields of /proc/PID/status ("Name:\tvalue" lines), for the /proc cache and
// respawn's identity of a crashed process.
#pragma once

#include <cstdint>
#include <string_view>

namespace fp {

// The first number of the line that starts with `field` ("Uid:" gives the
// real uid, "PPid:" the parent). False, and `out` untouched, when there is no
// such line or it does not start with a number.
bool proc_status_number(std::string_view status, std::string_view field, uint32_t& out);

// True when the status's "State:" says the process has exited (Z zombie, X
// dead): what /proc still shows of it is no longer its own (root cgroup, no exe).
bool proc_status_exited(std::string_view status);

}  // namespace fp
