// The event ring buffer: drained into an EventBatch, each record decoded by
// probe/event_decode.cpp; what does not decode is counted, never dropped silently.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

#include "probe/event_decode.h"
#include "probe/oom_victim.h"
#include "probe/probe.h"

namespace fp {

int Probe::on_event(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Probe*>(ctx);
  if (!self->sink_) return 0;
  const size_t ooms = self->sink_->ooms.size();
  if (!decode_event(data, size, *self->sink_))
    self->malformed_++;
  else if (self->sink_->ooms.size() > ooms && self->sink_->ooms.back().tgid_from == FP_OOM_TGID_UNRESOLVED)
    self->resolve_oom_victim(self->sink_->ooms.back());
  return 0;
}

// The probe named a thread it could not map to its process: /proc still
// knows it (the victim is being killed, not yet gone), and the process's
// slot gives the identity the event lacked.
void Probe::resolve_oom_victim(OomRecord& o) const {
  auto tgid = thread_tgid(o.tid);
  uint32_t slot = 0;
  if (!tgid || *tgid == o.victim.tgid) return;
  o.victim = {*tgid, 0};
  o.tgid_from = FP_OOM_TGID_PROC;
  fp_proc p;
  if (bpf_map_lookup_elem(fds_.proc_index, &*tgid, &slot) == 0 && copy_slot(slot, p, monotonic_now_ns()) &&
      p.tgid == *tgid) {
    o.victim.start_ns = p.start_ns;
    o.comm.assign(p.comm, strnlen(p.comm, FP_COMM_LEN));
  }
}

int Probe::drain(EventBatch& out) {
  sink_ = &out;
  int n = ring_buffer__consume(rb_);
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

int Probe::event_fd() const { return ring_buffer__epoll_fd(rb_); }

int Probe::poll(EventBatch& out, std::chrono::milliseconds timeout) {
  sink_ = &out;
  int n = ring_buffer__poll(rb_, int(timeout.count()));
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

}  // namespace fp
