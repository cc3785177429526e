// A compressed ring of counter snapshots (one process's history in
// ProcessTable): points oldest first, each stored as its difference from the
// point before, and the cursors and walker that read windows out of it.
// Knows nothing of what the values mean, except which one's rises it counts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "faultprobe/abi.h"

namespace fp {

// The values of one point, as a plain vector: the first n are used (n is the
// caller's: the Metrics fields, or a histogram's buckets).
constexpr size_t kRingMaxValues = FP_HIST_SLOTS;
using RingValues = std::array<uint64_t, kRingMaxValues>;
// The value whose rises a ring counts (StepRing::rises): Metrics::rss_bytes
// in the metric rings (process_table.cpp checks), meaningless in the others.
constexpr size_t kRiseIndex = 17;

// A ring of points, oldest first, each stored as its difference from the
// point before it: time delta, a bit mask of the values that changed and
// their zigzag LEB128 deltas, then the payload length (2 bytes, so the
// ring can be walked from either end). The newest point's absolute values
// are the owner's latest (kept outside the ring), and older ones are
// recovered by walking back from it; the oldest step's delta is never used.
// A busy process's steps take ~30 bytes instead of 168.
struct StepRing {
  std::vector<uint8_t> bytes;  // steps from `head` on
  uint32_t head = 0;
  uint32_t count = 0;          // points
  uint64_t front_ts = 0, back_ts = 0;
  // The frame cursors (RingCursor) are kept in, counted since the ring began:
  // the front point's sequence number, bytes erased from the front of
  // `bytes`, and points whose kRiseIndex value rose from the point before,
  // with whether the back point did.
  uint32_t popped = 0, erased = 0, rises = 0;
  bool back_rose = false;
};

// Where a window of one span starts in one ring: its base point (the
// newest at or before the window's start, or the oldest kept) with its
// values. As time goes on the base only moves forward, so the cursor steps
// forward over the points that left the window instead of walking the
// ring back from its newest point at every tick.
template <typename T, size_t N>
struct RingCursor {
  bool valid = false;
  bool at_back = false;     // the base was the newest point (a ring_replace_back() may change it)
  uint32_t seq = 0;         // the base's sequence number
  uint32_t next_at = 0;     // where the step to the next point begins (erased-relative)
  uint32_t rises_upto = 0;  // rises of the points up to the base (same frame as StepRing::rises)
  uint64_t ts = 0;          // the base's time
  uint64_t t0 = 0;          // the window start it was sought for
  std::array<T, N> v{};     // values at the base
};

// Appends a point `cur` at `ts`; `prev`: the values of the newest point (any, if the ring is empty).
void ring_push(StepRing& r, uint64_t ts, const RingValues& prev, const RingValues& cur, size_t n);
// Replaces the newest point (then at `old_back` values) by `cur` at `ts`.
void ring_replace_back(StepRing& r, uint64_t ts, const RingValues& old_back, const RingValues& cur, size_t n);
// Drops points no window needs: while the second oldest is at or before
// now - keep (it is the base of the longest window), or more than `cap` are kept.
void ring_trim(StepRing& r, uint64_t now, uint64_t keep, uint32_t cap, size_t n);

// ---- reading: inline, these run for every window of every busy process ----

namespace ring_codec {

inline uint64_t get_varint(const uint8_t*& in) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    uint8_t b = *in++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  return v;
}

// Differences are taken modulo 2^64 and stored zigzagged, so a value that
// went down (a gauge, a u32 histogram bucket that wrapped) costs a few bytes
// and comes back exactly.
inline uint64_t zigzag(uint64_t d) { return (d << 1) ^ static_cast<uint64_t>(static_cast<int64_t>(d) >> 63); }
inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

// Where the step that ends at byte `end` begins.
inline size_t step_begin(const std::vector<uint8_t>& bytes, size_t end) {
  size_t len = bytes[end - 2] | static_cast<size_t>(bytes[end - 1]) << 8;
  return end - 2 - len;
}

}  // namespace ring_codec

// Walks a ring from its newest point back, keeping the absolute values and time of the current point.
struct RingWalker {
  const StepRing& r;
  RingValues v;     // values at the current point
  uint64_t ts;      // its time
  size_t index;     // its index, 0 = oldest
  size_t end;       // end of its step in r.bytes

  RingWalker(const StepRing& ring, const RingValues& newest)
      : r(ring), v(newest), ts(ring.back_ts), index(ring.count - 1), end(ring.bytes.size()) {}

  // Moves to the previous point; false at the oldest. Hot: applies only the
  // values the step changed.
  bool back() {
    using namespace ring_codec;
    if (index == 0) return false;
    size_t begin = step_begin(r.bytes, end);
    const uint8_t* p = r.bytes.data() + begin;
    ts -= get_varint(p);
    for (uint64_t mask = get_varint(p); mask != 0; mask &= mask - 1) {
      v[static_cast<size_t>(__builtin_ctzll(mask))] -= unzigzag(get_varint(p));
    }
    end = begin;
    --index;
    return true;
  }
  // Back to the newest point at or before t (or the oldest there is).
  void back_to(uint64_t t) {
    while (ts > t && back()) {
    }
  }
};

// Brings `c` to the base of a window starting at `t0` in `r`: the newest
// point at or before t0, or the oldest kept. `newest`: the values of r's
// newest point. A cursor still valid for an earlier start steps forward over
// the points that left the window since; otherwise (first use, a start that
// went back, its base popped or the newest point, which ring_replace_back()
// may have changed since) it is found by walking back from the newest point.
template <typename Cursor>
void ring_seek(const StepRing& r, Cursor& c, uint64_t t0, const RingValues& newest) {
  using namespace ring_codec;
  const uint32_t back_seq = r.popped + r.count - 1;
  const bool ok = c.valid && !c.at_back && t0 >= c.t0 && static_cast<uint32_t>(c.seq - r.popped) < r.count;
  if (ok) {
    while (c.seq != back_seq) {
      const uint8_t* p = r.bytes.data() + static_cast<uint32_t>(c.next_at - r.erased);
      const uint8_t* const begin = p;
      const uint64_t dt = get_varint(p);
      if (c.ts + dt > t0) break;
      const uint64_t rise_before = c.v[kRiseIndex];
      // Differences mod 2^64 applied to 32-bit buckets come out exact mod 2^32.
      for (uint64_t mask = get_varint(p); mask != 0; mask &= mask - 1)
        c.v[static_cast<size_t>(__builtin_ctzll(mask))] +=
            static_cast<typename decltype(c.v)::value_type>(unzigzag(get_varint(p)));
      c.ts += dt;
      ++c.seq;
      c.next_at += static_cast<uint32_t>(p - begin) + 2;
      if (c.v[kRiseIndex] > rise_before) ++c.rises_upto;
    }
  } else {
    RingWalker wk(r, newest);
    uint32_t rises_after = 0;
    while (wk.ts > t0 && wk.index > 0) {
      const uint64_t after = wk.v[kRiseIndex];
      wk.back();
      if (after > wk.v[kRiseIndex]) ++rises_after;
    }
    c.valid = true;
    c.seq = r.popped + static_cast<uint32_t>(wk.index);
    c.next_at = r.erased + static_cast<uint32_t>(wk.end);
    c.ts = wk.ts;
    for (size_t i = 0; i < c.v.size(); ++i) c.v[i] = static_cast<typename decltype(c.v)::value_type>(wk.v[i]);
    c.rises_upto = r.rises - rises_after;
  }
  c.t0 = t0;
  c.at_back = c.seq == back_seq;
}

// The time of the point after the cursor's base; false if the base is the newest.
template <typename Cursor>
bool ring_next_ts(const StepRing& r, const Cursor& c, uint64_t& ts) {
  if (c.seq == r.popped + r.count - 1) return false;
  const uint8_t* p = r.bytes.data() + static_cast<uint32_t>(c.next_at - r.erased);
  ts = c.ts + ring_codec::get_varint(p);
  return true;
}

// The points after the cursor's base.
template <typename Cursor>
uint32_t ring_points_after(const StepRing& r, const Cursor& c) {
  return r.popped + r.count - 1 - c.seq;
}

}  // namespace fp
