// Reading a whole small file with plain read(2) until EOF: /proc, sysfs and
// cgroupfs files report size 0, and an istream turns a read error (ESRCH
// when the process exits between reads) into an exception. What a process
// puts in its /proc files is its choice: every read is capped.
#pragma once

#include <cstddef>
#include <string>

#include "util/result.h"

namespace fp {

// At most `cap` bytes of the file. Errors ("cannot open PATH", "cannot read
// PATH") carry errno.
Result<std::string> read_file(const std::string& path, size_t cap = size_t(1) << 20);

// The same, but what was read before an error ("" when the file cannot be
// opened): for readers that treat a vanished process as an empty field.
std::string read_file_partial(const std::string& path, size_t cap);

}  // namespace fp
