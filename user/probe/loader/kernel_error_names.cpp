#include "probe/loader/kernel_error_names.h"

#include <bpf/btf.h>

#include <string>
#include <utility>
#include <vector>

namespace fp {

ErrorDetectorNames kernel_error_detector_names() {
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return {};
  std::vector<std::pair<std::string, uint32_t>> enumerators;
  const int id = btf__find_by_name_kind(vmlinux, "error_detector", BTF_KIND_ENUM);
  const struct btf_type* t = id > 0 ? btf__type_by_id(vmlinux, id) : nullptr;
  if (t && btf_is_enum(t)) {
    const struct btf_enum* e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++e) {
      const char* raw = btf__name_by_offset(vmlinux, e->name_off);
      if (raw) enumerators.emplace_back(raw, uint32_t(e->val));
    }
  }
  btf__free(vmlinux);
  return error_detector_names(enumerators);
}

}  // namespace fp
