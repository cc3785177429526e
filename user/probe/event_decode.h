// Decoding of one record of the probe's ring buffer (exit, fatal signal, OOM
// victim, hang, hardware): the abi structs as the probe wrote them -> the
// records of an EventBatch. No BPF here, so unit tests feed it bytes.
#pragma once

#include <cstddef>

#include "probe/sample.h"

namespace fp {

// Appends the record to `out`. False (nothing appended) when it is
// malformed: shorter than its struct or of a type this build does not know.
bool decode_event(const void* data, size_t size, EventBatch& out);

}  // namespace fp
