// Talking to a running faultprobed from the CLI (status, events).
#pragma once

#include <string>

#include "server/client.h"

namespace fp {

// Connects to the daemon's socket. On failure prints one line saying why
// ("faultprobed is not running (no answer on PATH)", a permission problem,
// ...) to stderr and returns nullopt.
std::optional<Client> connect_daemon(const std::string& socket_path);

}  // namespace fp
