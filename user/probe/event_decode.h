// Decoding of one record of the probe's ring buffer (exit, fatal signal, OOM
// victim, hang, kernel error report, hardware): the abi structs as the probe wrote them -> the
// records of an EventBatch. No BPF here, so unit tests feed it bytes.
#pragma once

#include <cstddef>
#include <cstring>

#include "probe/sample.h"

namespace fp {

// The record as its struct T, or false when it is shorter. A copy: the
// ring buffer's bytes need not be aligned for T.
template <class T>
bool read_record(const void* data, size_t size, T& out) {
  if (size < sizeof(T)) return false;
  std::memcpy(&out, data, sizeof(T));
  return true;
}

// Appends convert(the record as T) to `to`; false (nothing appended) when
// the record is shorter than T.
template <class T, class Records, class Convert>
bool append_as(const void* data, size_t size, Records& to, Convert&& convert) {
  T rec;
  if (!read_record(data, size, rec)) return false;
  to.push_back(convert(rec));
  return true;
}

// Appends the record to `out`. False (nothing appended) when it is
// malformed: shorter than its struct or of a type this build does not know.
bool decode_event(const void* data, size_t size, EventBatch& out);

}  // namespace fp
