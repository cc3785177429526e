// Decoding of the hardware events of bpf/hw.bpf.c: the abi structs as the
// kernel filled them -> HwEvent (the device named, the grade decided). No
// BPF here, so unit tests feed it recorded payloads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "probe/sample.h"

namespace fp {

// Whether `type` is one of the FP_EV_HW_* events.
bool is_hw_event_type(uint32_t type);
// Appends the event to out.hw. False (nothing appended) when the payload is
// not a hardware event or is shorter than its struct.
bool decode_hw_event(const void* data, size_t size, EventBatch& out);

// Names the decoder uses, exposed for the tests.
std::string blk_status_name(int status);     // "ioerr", "medium", ... or "status 42"
const char* mc_error_type_name(uint32_t t);  // "corrected", "uncorrected", "deferred", "fatal", "info"
const char* aer_severity_name(uint32_t s);   // "nonfatal", "fatal", "correctable"
const char* trip_type_name(uint32_t t);      // "active", "passive", "hot", "critical"

}  // namespace fp
