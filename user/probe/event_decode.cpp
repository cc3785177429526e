#include "probe/event_decode.h"

#include <cstring>
#include <string>

#include "probe/hw_decode.h"

namespace fp {

namespace {

std::string comm_of(const char* c) { return std::string(c, strnlen(c, FP_COMM_LEN)); }

// An exit record unpacked (abi.h: the non-zero words of the final fp_proc,
// in order, with a bitmap of where they go). False when it does not add up:
// shorter than its words, a count that is not the bitmap's, or bits past
// the slot's last word.
bool decode_exit(const void* data, size_t size, std::vector<ExitRecord>& to) {
  constexpr size_t kHead = FP_EXIT_EVENT_BYTES(0);
  if (size < kHead) return false;
  fp_exit_event e;
  std::memcpy(&e, data, kHead);
  constexpr unsigned kHighBits = FP_PROC_WORDS - 64;
  if (e.present[1] >> kHighBits) return false;
  const unsigned n = unsigned(__builtin_popcountll(e.present[0]) + __builtin_popcountll(e.present[1]));
  if (n != e.nwords || size < FP_EXIT_EVENT_BYTES(size_t(n))) return false;
  std::memcpy(e.words, static_cast<const char*>(data) + kHead, 8 * size_t(n));
  uint64_t words[FP_PROC_WORDS] = {};
  unsigned next = 0;
  for (unsigned i = 0; i < FP_PROC_WORDS; i++)
    if (e.present[i / 64] >> (i % 64) & 1) words[i] = e.words[next++];
  ExitRecord r{e.hdr.ts_ns, e.exit_code, {}};
  std::memcpy(&r.final, words, sizeof(r.final));
  to.push_back(r);
  return true;
}

SignalRecord signal_record(const fp_signal_event& e) {
  return SignalRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.sig, e.tid, e.sender_tgid,
                      e.result, e.code};
}

OomRecord oom_record(const fp_oom_event& e) {
  return OomRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.total_vm_kb,
                   e.anon_rss_kb, e.file_rss_kb, e.shmem_rss_kb, e.tid, e.tgid_from};
}

HangRecord hang_record(const fp_hang_event& e) {
  return HangRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.tid, e.dstate_since_ns};
}

KernelErrorRecord kernel_error_record(const fp_kerror_event& e) {
  KernelErrorRecord r;
  r.ts_ns = e.hdr.ts_ns;
  r.proc = {e.hdr.tgid, e.hdr.start_ns};
  r.comm = comm_of(e.hdr.comm);
  r.tid = e.tid;
  r.task_comm = comm_of(e.task_comm);
  r.detector = e.detector;
  r.id = e.id;
  r.context = e.context;
  r.irq_known = (e.flags & FP_KERR_IRQ_KNOWN) != 0;
  return r;
}

}  // namespace

bool decode_event(const void* data, size_t size, EventBatch& out) {
  fp_event_hdr hdr;
  if (!read_record(data, size, hdr)) return false;
  switch (hdr.type) {
    case FP_EV_EXIT: return decode_exit(data, size, out.exits);
    case FP_EV_FATAL_SIGNAL: return append_as<fp_signal_event>(data, size, out.signals, signal_record);
    case FP_EV_OOM_VICTIM: return append_as<fp_oom_event>(data, size, out.ooms, oom_record);
    case FP_EV_HANG: return append_as<fp_hang_event>(data, size, out.hangs, hang_record);
    case FP_EV_KERNEL_ERROR:
      return append_as<fp_kerror_event>(data, size, out.kernel_errors, kernel_error_record);
    default: return is_hw_event_type(hdr.type) && decode_hw_event(data, size, out);
  }
}

}  // namespace fp
