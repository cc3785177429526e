// Replacing a small state file atomically: the next reader (a daemon that
// restarts after a crash) sees the old content or the new, never half.
#pragma once

#include <string>

#include "util/result.h"

namespace fp {

// Writes path.tmp (mode 0600: state files name other users' processes),
// fsyncs it and renames it over path, creating the parent directory.
Result<void> write_file_atomic(const std::string& path, const std::string& text);

}  // namespace fp
