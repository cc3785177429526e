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

// An exit record packed as bpf/sched.bpf.c's on_dead packs it: the non-zero
// words of `proc` in order, their bitmap, and `pad_words` words in all (the
// probe sends 24, 40 or FP_PROC_WORDS; 0: exactly as many as used). Returns
// the record's length; `out` holds FP_EXIT_EVENT_BYTES(FP_PROC_WORDS).
inline size_t pack_exit(const fp_proc& proc, uint32_t exit_code, fp_exit_event& out, unsigned pad_words = 0) {
  std::memset(&out, 0, sizeof out);
  hdr(out.hdr, FP_EV_EXIT, proc.tgid, proc.start_ns);
  std::memcpy(out.hdr.comm, proc.comm, FP_COMM_LEN);  // as the probe copies it
  out.exit_code = exit_code;
  uint64_t w[FP_PROC_WORDS];
  std::memcpy(w, &proc, sizeof w);
  unsigned n = 0;
  for (unsigned i = 0; i < FP_PROC_WORDS; i++) {
    if (!w[i]) continue;
    out.present[i / 64] |= 1ull << (i % 64);
    out.words[n++] = w[i];
  }
  out.nwords = n;
  return FP_EXIT_EVENT_BYTES(pad_words > n ? pad_words : n);
}

}  // namespace fp::test
