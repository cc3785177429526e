#include "probe/event_decode.h"

#include <cstring>
#include <string>

#include "probe/hw_decode.h"

namespace fp {

namespace {

std::string comm_of(const char* c) { return std::string(c, strnlen(c, FP_COMM_LEN)); }

ExitRecord exit_record(const fp_exit_event& e) { return ExitRecord{e.hdr.ts_ns, e.exit_code, e.proc}; }

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
    case FP_EV_EXIT: return append_as<fp_exit_event>(data, size, out.exits, exit_record);
    case FP_EV_FATAL_SIGNAL: return append_as<fp_signal_event>(data, size, out.signals, signal_record);
    case FP_EV_OOM_VICTIM: return append_as<fp_oom_event>(data, size, out.ooms, oom_record);
    case FP_EV_HANG: return append_as<fp_hang_event>(data, size, out.hangs, hang_record);
    case FP_EV_KERNEL_ERROR:
      return append_as<fp_kerror_event>(data, size, out.kernel_errors, kernel_error_record);
    default: return is_hw_event_type(hdr.type) && decode_hw_event(data, size, out);
  }
}

}  // namespace fp
