#include "probe/oom_victim.h"

#include <charconv>
#include <sstream>

#include "act/process.h"
#include "faultprobe/abi.h"
#include "probe/sample.h"

namespace fp {

const char* oom_tgid_from_name(uint32_t how) {
  switch (how) {
    case FP_OOM_TGID_SAME: return "leader";
    case FP_OOM_TGID_CURRENT: return "current";
    case FP_OOM_TGID_SIGKILL: return "sigkill";
    case FP_OOM_TGID_PROC: return "proc";
    default: return "unresolved";
  }
}

std::optional<uint32_t> thread_tgid(uint32_t tid, const std::string& proc_root) {
  auto status = read_small_file(proc_root + "/" + std::to_string(tid) + "/status", 1 << 16);
  if (!status) return std::nullopt;
  std::istringstream in(*status);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Tgid:", 0) != 0) continue;
    size_t b = line.find_first_not_of(" \t", 5);
    uint32_t tgid = 0;
    if (b == std::string::npos) return std::nullopt;
    auto [end, ec] = std::from_chars(line.data() + b, line.data() + line.size(), tgid);
    if (ec != std::errc() || tgid == 0) return std::nullopt;
    return tgid;
  }
  return std::nullopt;
}

}  // namespace fp
