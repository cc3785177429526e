// Ring-buffer records built the way the probe fills them, for the decoders'
// tests (test_event_decode.cpp, test_hw_decode.cpp).
#pragma once

#include <cstdint>
#include <cstring>

#include "faultprobe/abi.h"

namespace fp::test {

inline constexpr uint64_t kEventTs = 5'000'000'000ull;  // every record's ts_ns

// A record header: `type`, the process it names (tgid 0: none), ts kEventTs.
inline void hdr(fp_event_hdr& h, uint32_t type, uint32_t tgid = 0, uint64_t start = 0, const char* comm = "") {
  std::memset(&h, 0, sizeof h);
  h.type = type;
  h.tgid = tgid;
  h.ts_ns = kEventTs;
  h.start_ns = start;
  std::strncpy(h.comm, comm, FP_COMM_LEN - 1);
}

}  // namespace fp::test
