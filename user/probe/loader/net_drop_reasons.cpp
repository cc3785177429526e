#include "probe/loader/net_drop_reasons.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <cerrno>
#include <string_view>

namespace fp {

DropReasonNames kernel_drop_reason_names() {
  DropReasonNames names;
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return names;
  const int id = btf__find_by_name_kind(vmlinux, "skb_drop_reason", BTF_KIND_ENUM);
  const struct btf_type* t = id > 0 ? btf__type_by_id(vmlinux, id) : nullptr;
  if (t && btf_is_enum(t)) {
    constexpr std::string_view prefix = "SKB_DROP_REASON_";
    const struct btf_enum* e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++e) {
      const char* raw = btf__name_by_offset(vmlinux, e->name_off);
      if (!raw) continue;
      std::string_view name(raw);
      if (name.starts_with(prefix)) name.remove_prefix(prefix.size());
      names.emplace(uint32_t(e->val), std::string(name));
    }
  }
  btf__free(vmlinux);
  return names;
}

void NetDropReasonReader::add(const ProcKey& proc, const fp_net_drop_key& key, uint64_t count,
                              std::vector<NetDropReason>& out) const {
  if (key.tgid != proc.tgid || key.start_ns != proc.start_ns) return;
  NetDropReason r;
  r.reason = key.reason;
  r.count = count;
  if (auto it = names_.find(key.reason); it != names_.end()) r.name = it->second;
  out.push_back(std::move(r));
}

bool NetDropReasonReader::read(const ProcKey& proc, std::vector<NetDropReason>& out) {
  out.clear();
  // One batch read of the whole map (v5.6+): a handful of syscalls.
  if (batch_) {
    keys_.resize(FP_DEFAULT_NET_DROP_REASONS);
    values_.resize(FP_DEFAULT_NET_DROP_REASONS);
    fp_net_drop_key token{}, next{};
    bool first = true, done = false;
    while (!done) {
      __u32 count = FP_DEFAULT_NET_DROP_REASONS;
      int r = bpf_map_lookup_batch(fd_, first ? nullptr : &token, &next, keys_.data(), values_.data(), &count, nullptr);
      if (r != 0 && errno != ENOENT) {
        if (first) break;  // refused: walk the keys below
        return false;
      }
      done = r != 0;
      for (__u32 i = 0; i < count; ++i) add(proc, keys_[i], values_[i], out);
      token = next;
      first = false;
    }
    if (!first) return true;
    batch_ = false;
    out.clear();
  }
  fp_net_drop_key key{}, next{};
  uint64_t v = 0;
  const void* prev = nullptr;
  // Bounded: an LRU map being written meanwhile may restart the walk.
  for (int i = 0; i < 4 * FP_DEFAULT_NET_DROP_REASONS; ++i) {
    if (bpf_map_get_next_key(fd_, prev, &next) != 0) return true;  // ENOENT: the end
    key = next;
    prev = &key;
    if (key.tgid != proc.tgid || key.start_ns != proc.start_ns) continue;
    if (bpf_map_lookup_elem(fd_, &key, &v) != 0) continue;  // evicted meanwhile
    add(proc, key, v, out);
  }
  return true;
}

}  // namespace fp
