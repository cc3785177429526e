// The event ring buffer: drained into an EventBatch, each record decoded by
// probe/event_decode.cpp; what does not decode is counted, never dropped silently.
#include <bpf/libbpf.h>

#include "probe/event_decode.h"
#include "probe/probe.h"

namespace fp {

int Probe::on_event(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Probe*>(ctx);
  if (self->sink_ && !decode_event(data, size, *self->sink_)) self->malformed_++;
  return 0;
}

int Probe::drain(EventBatch& out) {
  sink_ = &out;
  int n = ring_buffer__consume(rb_);
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

int Probe::poll(EventBatch& out, std::chrono::milliseconds timeout) {
  sink_ = &out;
  int n = ring_buffer__poll(rb_, int(timeout.count()));
  sink_ = nullptr;
  return n < 0 ? 0 : n;
}

}  // namespace fp
