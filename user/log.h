// Logging set-up: spdlog to stderr, libbpf's own messages routed into it.
#pragma once

#include <spdlog/spdlog.h>

namespace fp {

// verbosity 0: info, 1: debug (libbpf warnings and info), 2+: trace (libbpf debug).
void init_logging(int verbosity);

}  // namespace fp
