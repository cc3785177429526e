// Writing a StepRing: the step codec (varint, zigzag) and the ring's
// push, replace and trim (layout described in counter_ring.h).
#include "detect/counter_ring.h"

namespace fp {
namespace {

using namespace ring_codec;

void put_varint(uint8_t*& out, uint64_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<uint8_t>(v);
}

struct Step {
  uint64_t dt = 0;  // time since the previous point
  RingValues d{};   // value - previous value (mod 2^64), 0 where unchanged
};

// Longest payload: dt and mask (10 bytes each) plus 10 bytes per value.
constexpr size_t kMaxPayload = 20 + 10 * kRingMaxValues;
static_assert(kMaxPayload <= 0xffff);

// Appends one step: payload, then its length (2 bytes, little endian).
void append_step(std::vector<uint8_t>& bytes, uint64_t dt, const RingValues& prev, const RingValues& cur,
                 size_t n) {
  uint8_t buf[kMaxPayload + 2];
  uint8_t* out = buf;
  uint64_t mask = 0;
  for (size_t i = 0; i < n; ++i) {
    if (cur[i] != prev[i]) mask |= 1ull << i;
  }
  put_varint(out, dt);
  put_varint(out, mask);
  for (size_t i = 0; i < n; ++i) {
    if ((mask >> i) & 1) put_varint(out, zigzag(cur[i] - prev[i]));
  }
  size_t len = static_cast<size_t>(out - buf);
  *out++ = static_cast<uint8_t>(len);
  *out++ = static_cast<uint8_t>(len >> 8);
  size_t need = bytes.size() + len + 2;
  // Grow by an eighth, not double: there are thousands of these rings.
  if (need > bytes.capacity()) bytes.reserve(need + need / 8);
  bytes.insert(bytes.end(), buf, out);
}

// Decodes the step whose payload starts at `p`; returns the end of the step.
const uint8_t* decode_step(const uint8_t* p, size_t n, Step& st) {
  st.dt = get_varint(p);
  uint64_t mask = get_varint(p);
  for (size_t i = 0; i < n; ++i) st.d[i] = (mask >> i) & 1 ? unzigzag(get_varint(p)) : 0;
  return p + 2;
}

// Whether the point `cur` after `prev` counts as a rise (StepRing::rises).
bool rose(const RingValues& prev, const RingValues& cur) { return cur[kRiseIndex] > prev[kRiseIndex]; }

void ring_pop_front(StepRing& r, size_t n) {
  Step st;
  const uint8_t* base = r.bytes.data();
  const uint8_t* second = decode_step(base + r.head, n, st);
  const uint8_t* p = second;
  r.front_ts += get_varint(p);  // the second step's dt
  r.head = static_cast<uint32_t>(second - base);
  --r.count;
  ++r.popped;
  // Compact once an eighth of the buffer is dead (a memmove of ~1-5 KB every few pops).
  if (r.head >= 32 && r.head * 8 > r.bytes.size()) {
    r.bytes.erase(r.bytes.begin(), r.bytes.begin() + r.head);
    r.erased += r.head;
    r.head = 0;
    if (r.bytes.capacity() > r.bytes.size() + r.bytes.size() / 2 + 64) r.bytes.shrink_to_fit();
  }
}

}  // namespace

void ring_push(StepRing& r, uint64_t ts, const RingValues& prev, const RingValues& cur, size_t n) {
  if (r.count == 0) {
    append_step(r.bytes, 0, cur, cur, n);  // the oldest step's delta is never used
    r.front_ts = ts;
    r.back_rose = false;
  } else {
    append_step(r.bytes, ts - r.back_ts, prev, cur, n);
    r.back_rose = rose(prev, cur);
    r.rises += r.back_rose;
  }
  r.back_ts = ts;
  ++r.count;
}

void ring_replace_back(StepRing& r, uint64_t ts, const RingValues& old_back, const RingValues& cur, size_t n) {
  if (r.count <= 1) {
    if (r.count == 0) return ring_push(r, ts, cur, cur, n);
    r.front_ts = r.back_ts = ts;
    return;
  }
  size_t begin = step_begin(r.bytes, r.bytes.size());
  Step st;
  decode_step(r.bytes.data() + begin, n, st);
  RingValues prev{};
  for (size_t i = 0; i < n; ++i) prev[i] = old_back[i] - st.d[i];
  uint64_t prev_ts = r.back_ts - st.dt;
  r.bytes.resize(begin);
  append_step(r.bytes, ts - prev_ts, prev, cur, n);
  r.back_ts = ts;
  r.rises -= r.back_rose;
  r.back_rose = rose(prev, cur);
  r.rises += r.back_rose;
}

void ring_trim(StepRing& r, uint64_t now, uint64_t keep, uint32_t cap, size_t n) {
  uint64_t horizon = now > keep ? now - keep : 0;
  while (r.count >= 2) {
    Step st;
    const uint8_t* p = decode_step(r.bytes.data() + r.head, n, st);
    uint64_t second_ts = r.front_ts + get_varint(p);
    if (second_ts > horizon && r.count <= cap) break;
    ring_pop_front(r, n);
  }
}

}  // namespace fp
