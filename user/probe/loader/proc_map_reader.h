// The entries of one process in a BPF hash map keyed by (tgid, start_ns, ...)
// (net_endpoints, net_drop_reasons): a batch read of the whole map where the
// kernel has it (v5.6+: a handful of syscalls), else a bounded walk of the
// keys. The maps are LRU and written meanwhile: an entry evicted during the
// walk is skipped, and the walk stops after 4x the map's size.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "probe/sample.h"

namespace fp {

template <typename Key, typename Value>
class ProcMapReader {
 public:
  ProcMapReader(int map_fd, uint32_t capacity) : fd_(map_fd), capacity_(capacity) {}

  // Calls add(key, value) for each entry of `proc`; false when the map could not be read.
  template <typename Add>
  bool read(const ProcKey& proc, Add&& add) {
    auto mine = [&](const Key& k) { return k.tgid == proc.tgid && k.start_ns == proc.start_ns; };
    if (batch_) {
      keys_.resize(capacity_);
      values_.resize(capacity_);
      Key token{}, next{};
      bool first = true, done = false;
      while (!done) {
        __u32 count = capacity_;
        int r = bpf_map_lookup_batch(fd_, first ? nullptr : &token, &next, keys_.data(), values_.data(), &count,
                                     nullptr);
        if (r != 0 && errno != ENOENT) {
          if (first) break;  // refused: walk the keys below
          return false;
        }
        done = r != 0;
        for (__u32 i = 0; i < count; ++i)
          if (mine(keys_[i])) add(keys_[i], values_[i]);
        token = next;
        first = false;
      }
      if (!first) return true;
      batch_ = false;  // (nothing was added: the first call was refused)
    }
    Key key{}, next{};
    Value v{};
    const void* prev = nullptr;
    for (uint32_t i = 0; i < 4 * capacity_; ++i) {
      if (bpf_map_get_next_key(fd_, prev, &next) != 0) return true;  // ENOENT: the end
      key = next;
      prev = &key;
      if (!mine(key)) continue;
      if (bpf_map_lookup_elem(fd_, &key, &v) != 0) continue;  // evicted meanwhile
      add(key, v);
    }
    return true;
  }

 private:
  int fd_;
  uint32_t capacity_;
  bool batch_ = true;
  std::vector<Key> keys_;
  std::vector<Value> values_;
};

}  // namespace fp
