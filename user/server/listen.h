// Creating the listening socket and checking peers (server.cpp's setup half).
#pragma once

#include <sys/types.h>

#include <string>

#include "util/result.h"

namespace fp {

struct ListenSocket {
  int fd = -1;
  dev_t dev = 0;  // identity of the socket file, so that stop() removes only our own
  ino_t ino = 0;
};

// mkdir (0755) the parent if missing, replace a stale socket file, bind, chmod
// 0660, chgrp `group` (if not empty), listen. Non-blocking, close-on-exec.
Result<ListenSocket> open_listen_socket(const std::string& path, const std::string& group);

// Removes the socket file if it is still the one open_listen_socket made.
void remove_listen_socket(const std::string& path, const ListenSocket& ls);

}  // namespace fp
