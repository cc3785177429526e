// NAME=VALUE lists as programs print them: a process's NUL-separated
// environ, the lines of `systemctl show`.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fp {

// The NAME=VALUE entries of raw, separated by `sep`, in order; entries
// without a name or an '=' are skipped.
std::vector<std::pair<std::string, std::string>> split_assignments(std::string_view raw, char sep);

}  // namespace fp
