#include "probe/event_decode.h"

#include <cstring>
#include <string>

#include "probe/hw_decode.h"

namespace fp {

namespace {

std::string comm_of(const char* c) { return std::string(c, strnlen(c, FP_COMM_LEN)); }

// The record as its struct, or false when it is shorter (the copy keeps the
// ring buffer's alignment out of it).
template <class T>
bool read_as(const void* data, size_t size, T& out) {
  if (size < sizeof(T)) return false;
  std::memcpy(&out, data, sizeof(T));
  return true;
}

}  // namespace

bool decode_event(const void* data, size_t size, EventBatch& out) {
  fp_event_hdr hdr;
  if (!read_as(data, size, hdr)) return false;
  switch (hdr.type) {
    case FP_EV_EXIT: {
      fp_exit_event e;
      if (!read_as(data, size, e)) return false;
      out.exits.push_back(ExitRecord{e.hdr.ts_ns, e.exit_code, e.proc});
      return true;
    }
    case FP_EV_FATAL_SIGNAL: {
      fp_signal_event e;
      if (!read_as(data, size, e)) return false;
      out.signals.push_back(SignalRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.sig, e.tid,
                                         e.sender_tgid, e.result, e.code});
      return true;
    }
    case FP_EV_OOM_VICTIM: {
      fp_oom_event e;
      if (!read_as(data, size, e)) return false;
      out.ooms.push_back(OomRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.total_vm_kb,
                                   e.anon_rss_kb, e.file_rss_kb, e.shmem_rss_kb});
      return true;
    }
    case FP_EV_HANG: {
      fp_hang_event e;
      if (!read_as(data, size, e)) return false;
      out.hangs.push_back(
          HangRecord{e.hdr.ts_ns, {e.hdr.tgid, e.hdr.start_ns}, comm_of(e.hdr.comm), e.tid, e.dstate_since_ns});
      return true;
    }
    default: return is_hw_event_type(hdr.type) && decode_hw_event(data, size, out);
  }
}

}  // namespace fp
