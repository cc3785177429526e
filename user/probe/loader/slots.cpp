// The per-process slots as the reader sees them: the slot array mapped in
// chunks where slots change (and unmapped where they stay idle), the dirty
// bitmap that says which slots changed, and the copies refresh() makes of
// them. The same for a loaded and a taken-over probe.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include <spdlog/spdlog.h>

#include "detect/process_table.h"  // slot_digest
#include "probe/loader/skel.h"
#include "probe/probe.h"

namespace fp {

// Maps the per-process slots read-only, the dirty bitmap read-write (the
// reader swaps it to zero) and .bss for the slot high-water mark; opens the
// ring buffer. The same for a loaded and a taken-over probe.
Result<void> Probe::map_views() {
  long page = sysconf(_SC_PAGESIZE);
  auto round = [&](size_t n) { return (n + size_t(page) - 1) / size_t(page) * size_t(page); };
  dirty_map_len_ = round(sizeof(uint64_t) * dirty_words_per_cpu_ * size_t(ncpus_));
  void* m = mmap(nullptr, dirty_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED, fds_.dirty, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the probe's dirty-slot bitmap");
  dirty_ = static_cast<uint64_t*>(m);
  bss_map_len_ = round(sizeof(Bss));
  m = mmap(nullptr, bss_map_len_, PROT_READ, MAP_SHARED, fds_.bss, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot mmap the probe's .bss");
  bss_map_ = m;
  hwm_ = reinterpret_cast<const uint32_t*>(static_cast<const char*>(m) + offsetof(Bss, fp_slots_hwm));
  seed_stats_ = reinterpret_cast<const fp_seed_stats*>(static_cast<const char*>(m) + offsetof(Bss, fp_seed_stats));
  net_pending_events_ =
      reinterpret_cast<const uint64_t*>(static_cast<const char*>(m) + offsetof(Bss, fp_net_pending_events));
  net_resolve_stats_ = reinterpret_cast<const fp_net_resolve_stats*>(static_cast<const char*>(m) +
                                                                     offsetof(Bss, fp_net_resolve_stats));
  // The slot array: reserved as address space, mapped chunk by chunk where
  // slots are read (map_slot), unmapped where they stay idle.
  slots_map_len_ = round(sizeof(fp_proc) * size_t(max_procs_));
  m = mmap(nullptr, slots_map_len_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return Error::from_errno(errno, "cannot reserve address space for the per-process counters");
  slots_ = static_cast<const fp_proc*>(m);
  slot_chunk_bytes_ = std::max<size_t>(kSlotChunkBytes, size_t(page));
  chunk_used_ns_.assign((slots_map_len_ + slot_chunk_bytes_ - 1) / slot_chunk_bytes_, 0);
  slots_mapped_bytes_ = 0;
  // One chunk now: a map the kernel refuses to mmap fails the load, not a tick.
  if (!map_slot(0, monotonic_now_ns())) return Error::from_errno(errno, "cannot mmap the per-process counters");
  dirty_acc_.assign(dirty_words_per_cpu_, 0);
  rb_ = ring_buffer__new(fds_.events, &Probe::on_event, this, nullptr);
  if (!rb_) return Error::from_errno(errno, "cannot open the probe's ring buffer");
  // libbpf maps the consumer page, and the producer page with the data twice.
  bpf_map_info info{};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fds_.events, &info, &info_len) == 0)
    ring_map_len_ = 2 * size_t(page) + 2 * size_t(info.max_entries);
  return {};
}

Probe::MappedBytes Probe::mapped_bytes() const {
  return {slots_mapped_bytes_, ring_map_len_, dirty_map_len_ + bss_map_len_};
}

// The kernel maps every page of a BPF array when it is mmap-ed, so a map
// mapped whole is all in RSS from the start (8.5 MiB for 16,384 slots, with
// 100 processes tracked), and a mapped page stays in RSS for as long as it
// is mapped. Slots are read only when the probe marks them dirty, so the
// array is mapped in chunks where a dirty slot is read, over the reserved
// range (addresses never move), and a chunk none of whose slots changed for
// kSlotChunkIdleNs is unmapped again: on a host of mostly idle processes
// most of the array is not mapped. Mapping a chunk is one mmap of 4 pages.
bool Probe::map_slot(uint32_t slot, uint64_t now_ns) const {
  size_t first = size_t(slot) * sizeof(fp_proc), last = first + sizeof(fp_proc) - 1;
  char* base = reinterpret_cast<char*>(const_cast<fp_proc*>(slots_));
  for (size_t c = first / slot_chunk_bytes_; c <= last / slot_chunk_bytes_; c++) {
    if (chunk_used_ns_[c] == 0) {
      size_t off = c * slot_chunk_bytes_, len = std::min(slot_chunk_bytes_, slots_map_len_ - off);
      if (mmap(base + off, len, PROT_READ, MAP_SHARED | MAP_FIXED, fds_.proc_slots, off_t(off)) == MAP_FAILED) {
        if (!slots_map_failed_)
          spdlog::error("cannot mmap the probe's slots at offset {}: {}", off, std::strerror(errno));
        slots_map_failed_ = true;
        return false;
      }
      slots_mapped_bytes_ += len;
    }
    chunk_used_ns_[c] = std::max<uint64_t>(now_ns, 1);
  }
  return true;
}

// Once a second: chunks idle for kSlotChunkIdleNs go back to the reservation
// (adjacent ones in one call).
void Probe::unmap_idle_slot_chunks(uint64_t now_ns) {
  if (now_ns - last_unmap_sweep_ns_ < 1'000'000'000ull) return;
  last_unmap_sweep_ns_ = now_ns;
  char* base = reinterpret_cast<char*>(const_cast<fp_proc*>(slots_));
  auto idle = [&](size_t c) { return chunk_used_ns_[c] != 0 && now_ns - chunk_used_ns_[c] >= kSlotChunkIdleNs; };
  for (size_t c = 0; c < chunk_used_ns_.size();) {
    if (!idle(c)) {
      c++;
      continue;
    }
    size_t end = c;
    while (end < chunk_used_ns_.size() && idle(end)) end++;
    size_t off = c * slot_chunk_bytes_, len = std::min(end * slot_chunk_bytes_, slots_map_len_) - off;
    if (mmap(base + off, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) !=
        MAP_FAILED) {
      for (size_t i = c; i < end; i++) chunk_used_ns_[i] = 0;
      slots_mapped_bytes_ -= len;
    }
    c = end;
  }
}

// Copies one slot, retrying once if its owner changed mid-copy (the probe
// bumps `gen` on every allocation and release). False if it kept changing.
bool Probe::copy_slot(uint32_t slot, fp_proc& dst, uint64_t now_ns) const {
  if (!map_slot(slot, now_ns)) return false;
  const fp_proc* s = &slots_[slot];
  auto& gen = const_cast<uint32_t&>(s->gen);
  for (int attempt = 0; attempt < 2; attempt++) {
    uint32_t g1 = std::atomic_ref<uint32_t>(gen).load(std::memory_order_acquire);
    if ((g1 & 1) == 0) {  // free: all zero but gen, so that equal copies have equal digests
      dst = fp_proc{};
      dst.gen = g1;
      return true;
    }
    std::memcpy(&dst, s, sizeof(dst));
    std::atomic_thread_fence(std::memory_order_acquire);
    uint32_t g2 = std::atomic_ref<uint32_t>(gen).load(std::memory_order_relaxed);
    if (g1 == g2 && dst.tgid != 0) return true;
  }
  return false;
}

std::optional<fp_proc> Probe::copy(uint32_t slot) const {
  fp_proc p{};
  if (slot >= std::min(slots_high_water(), max_procs_) || !copy_slot(slot, p, monotonic_now_ns()) )
    return std::nullopt;
  return p;
}

// Copies a changed slot for the caller and notes its digest.
bool Probe::take_slot(uint32_t slot) {
  fp_proc& dst = copies_.emplace_back();
  if (!copy_slot(slot, dst, refreshed_at_ns_)) {
    copies_.pop_back();
    return false;
  }
  digests_[slot] = slot_digest(dst);
  changed_.push_back(slot);
  return true;
}

const std::vector<uint32_t>& Probe::refresh() {
  refreshed_at_ns_ = monotonic_now_ns();
  changed_.clear();
  copies_.clear();  // the caller is done with the last refresh's copies
  uint32_t hwm = std::min(slots_high_water(), max_procs_);
  if (digests_.size() < hwm) digests_.resize(hwm);
  uint32_t words = (hwm + 63) / 64;
  std::fill(dirty_acc_.begin(), dirty_acc_.begin() + words, 0);
  // Swap each CPU's bits to zero before copying: a slot touched after the
  // swap is marked again and picked up next time, so nothing is missed.
  for (int cpu = 0; cpu < ncpus_; cpu++) {
    uint64_t* base = dirty_ + size_t(cpu) * dirty_words_per_cpu_;
    for (uint32_t w = 0; w < words; w++) {
      if (base[w]) dirty_acc_[w] |= std::atomic_ref<uint64_t>(base[w]).exchange(0, std::memory_order_acq_rel);
    }
  }
  for (uint32_t slot : retry_) dirty_acc_[slot / 64] |= 1ull << (slot % 64);
  retry_.clear();
  if (resync_) {  // after a takeover: every used slot, once
    for (uint32_t w = 0; w < words; w++) dirty_acc_[w] = ~0ull;
    resync_ = false;
  }
  // Room for every copy this refresh can make, exactly: a burst (a start-up,
  // a poke of 10,000 idle processes: 544 B a copy) costs its copies, not a
  // doubling vector's slack, and the refresh after it gives them back to the
  // heap (before the daemon's malloc_trim after a burst).
  size_t marked = recheck_.size();
  for (uint32_t w = 0; w < words; w++) marked += size_t(__builtin_popcountll(dirty_acc_[w]));
  if (copies_.capacity() > 256 && marked * 4 < copies_.capacity()) std::vector<fp_proc>().swap(copies_);
  copies_.reserve(marked);
  for (uint32_t w = 0; w < words; w++) {
    for (uint64_t bits = dirty_acc_[w]; bits; bits &= bits - 1) {
      uint32_t slot = w * 64 + uint32_t(__builtin_ctzll(bits));
      if (slot >= hwm) break;
      if (!take_slot(slot)) retry_.push_back(slot);  // churning right now: take it next time
    }
  }
  recheck_marked_slots(hwm);
  unmap_idle_slot_chunks(refreshed_at_ns_);
  return changed_;
}

// A hook marks a slot dirty when it looks the slot up, before it writes (and
// skips the mark while the bit is still set), so the copy that took the mark
// may have raced the write and kept the values from before it. Nothing marks
// the slot again if its process then goes quiet (a child that faults 64 MiB
// and sleeps), so every slot copied for a mark is copied once more at a
// refresh at least kRecheckAfterNs later, when the write that raced has long
// landed (a hook runs for a microsecond at most, without sleeping). Only a
// copy that differs counts as a change: its slot_digest() differs from the
// digest of the copy last returned for that slot (no copy of it is kept).
// Slots copied this time for a mark are rechecked as well, so the list holds
// at most two refreshes' worth.
void Probe::recheck_marked_slots(uint32_t hwm) {
  constexpr uint64_t kRecheckAfterNs = 1'000'000;
  const size_t marked = changed_.size();
  recheck_next_.clear();
  for (const Recheck& r : recheck_) {
    if (refreshed_at_ns_ - r.copied_ns < kRecheckAfterNs) {
      recheck_next_.push_back(r);  // too soon to be sure: next time
      continue;
    }
    if (r.slot >= hwm || dirty_acc_[r.slot / 64] & (1ull << (r.slot % 64))) continue;  // copied just now
    fp_proc& copy = copies_.emplace_back();
    if (!copy_slot(r.slot, copy, refreshed_at_ns_)) {
      copies_.pop_back();
      retry_.push_back(r.slot);
      continue;
    }
    uint64_t digest = slot_digest(copy);
    if (digest == digests_[r.slot]) {
      copies_.pop_back();  // the same as the copy the caller has: no change
      continue;
    }
    digests_[r.slot] = digest;
    changed_.push_back(r.slot);
    recheck_next_.push_back({r.slot, refreshed_at_ns_});
  }
  for (size_t i = 0; i < marked; i++) recheck_next_.push_back({changed_[i], refreshed_at_ns_});
  recheck_.swap(recheck_next_);
}

void Probe::read(Sample& out) {
  refresh();
  read_full(out);
}

void Probe::read_full(Sample& out) const {
  out.procs.clear();
  out.ts_ns = monotonic_now_ns();
  uint32_t hwm = std::min(slots_high_water(), max_procs_);
  out.procs.reserve(hwm);
  fp_proc copy;
  for (uint32_t i = 0; i < hwm; i++)
    if (copy_slot(i, copy, out.ts_ns) && copy.tgid != 0) out.procs.push_back(copy);
}

uint32_t Probe::slots_high_water() const {
  return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(*hwm_)).load(std::memory_order_acquire);
}

}  // namespace fp
