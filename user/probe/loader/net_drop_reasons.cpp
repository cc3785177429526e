#include "probe/loader/net_drop_reasons.h"

#include <bpf/btf.h>

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
  return map_.read(proc, [&](const fp_net_drop_key& k, uint64_t count) { add(proc, k, count, out); });
}

}  // namespace fp
