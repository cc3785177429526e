// The process of an OOM victim the probe could not resolve from the thread
// the kernel marked (FP_OOM_TGID_UNRESOLVED, see bpf/oom_victim.bpf.h): read
// from /proc/TID/status as soon as the event arrives, while the victim (being
// killed) is most likely still there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace fp {

// The Tgid of thread `tid` (/proc/TID/status works for any thread id, listed
// in /proc or not); nullopt when the thread is gone.
std::optional<uint32_t> thread_tgid(uint32_t tid, const std::string& proc_root = "/proc");

}  // namespace fp
