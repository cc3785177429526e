#include "detect/kernel_error.h"

#include <cinttypes>
#include <cstdio>

#include "faultprobe/abi.h"

namespace fp {

ErrorDetectorNames error_detector_names(const std::vector<std::pair<std::string, uint32_t>>& enumerators) {
  constexpr std::string_view prefix = "ERROR_DETECTOR_";
  ErrorDetectorNames names;
  for (const auto& [raw, value] : enumerators) {
    std::string_view n(raw);
    if (n.starts_with(prefix)) n.remove_prefix(prefix.size());
    if (n.empty()) continue;
    std::string name;
    for (char c : n) name += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    if (name == "warn") name = "warning";  // the tracepoint's own word for it
    names.emplace(value, std::move(name));
  }
  return names;
}

std::string error_detector_name(uint32_t value, const ErrorDetectorNames* names) {
  if (names != nullptr)
    if (auto it = names->find(value); it != names->end()) return it->second;
  return "detector#" + std::to_string(value);
}

bool error_detector_is_memory_safety(std::string_view name) { return name == "kfence" || name == "kasan"; }

std::string kernel_error_context_name(uint32_t context) {
  switch (context) {
    case FP_KERR_CTX_TASK: return "task";
    case FP_KERR_CTX_KTHREAD: return "kernel_thread";
    case FP_KERR_CTX_SOFTIRQ: return "softirq";
    case FP_KERR_CTX_HARDIRQ: return "hardirq";
    case FP_KERR_CTX_NMI: return "nmi";
    default: return "context#" + std::to_string(context);
  }
}

bool kernel_error_in_interrupt(uint32_t context) {
  return context == FP_KERR_CTX_SOFTIRQ || context == FP_KERR_CTX_HARDIRQ || context == FP_KERR_CTX_NMI;
}

std::string kernel_error_id_hex(uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, id);
  return buf;
}

}  // namespace fp
