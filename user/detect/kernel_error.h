// Naming the kernel's own error reports (bpf/kerror.bpf.c,
// error_report:error_report_end): which detector made one, in which context.
// The detector is the kernel's enum error_detector, whose values the running
// kernel defines (5.14 has KFENCE and KASAN, later ones add WARN and more):
// the daemon reads the enumerators from the kernel's BTF at start
// (probe/loader/kernel_error_names.h) and names a value it does not know
// "detector#N", never drops it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fp {

using ErrorDetectorNames = std::unordered_map<uint32_t, std::string>;

// The enumerators of enum error_detector as BTF lists them (name, value) ->
// value -> name: the ERROR_DETECTOR_ prefix dropped and lower-cased
// (ERROR_DETECTOR_KFENCE -> "kfence"); ERROR_DETECTOR_WARN is "warning", as
// the tracepoint prints it.
ErrorDetectorNames error_detector_names(const std::vector<std::pair<std::string, uint32_t>>& enumerators);

// The name of a detector value: from `names` (may be null), else "detector#N".
std::string error_detector_name(uint32_t value, const ErrorDetectorNames* names);

// KFENCE and KASAN report a bad memory access inside the kernel (memory
// corruption may follow): critical. A WARN, or a detector this build does
// not know, is a warning.
bool error_detector_is_memory_safety(std::string_view name);

// FP_KERR_CTX_*: "task", "kernel_thread", "softirq", "hardirq", "nmi",
// "context#N" for a value this build does not know.
std::string kernel_error_context_name(uint32_t context);
// Whether the report was made in interrupt context (softirq, hardirq, NMI):
// the current task was only interrupted.
bool kernel_error_in_interrupt(uint32_t context);

// "0xffff888012345678": the report's id in hex.
std::string kernel_error_id_hex(uint64_t id);

}  // namespace fp
