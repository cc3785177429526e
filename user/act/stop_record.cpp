#include "act/stop_record.h"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "util/atomic_file.h"

namespace fp {

Result<void> StopRecord::add(const std::vector<ProcKey>& keys) {
  keys_.insert(keys_.end(), keys.begin(), keys.end());
  if (path_.empty()) return {};
  nlohmann::json list = nlohmann::json::array();
  for (const ProcKey& k : keys_) list.push_back({{"tgid", k.tgid}, {"start_ns", k.start_ns}});
  return write_file_atomic(path_, nlohmann::json{{"stopped", list}}.dump() + "\n");
}

void StopRecord::clear() {
  keys_.clear();
  if (!path_.empty() && ::unlink(path_.c_str()) != 0 && errno != ENOENT)
    spdlog::warn("cannot remove {}: {}", path_, std::strerror(errno));
}

size_t StopRecord::continue_recorded(const SendFn& send) {
  if (path_.empty()) return 0;
  std::ifstream in(path_);
  if (!in) return 0;
  std::stringstream ss;
  ss << in.rdbuf();
  size_t continued = 0;
  try {
    auto j = nlohmann::json::parse(ss.str());
    for (const auto& e : j.at("stopped")) {
      ProcKey k{e.at("tgid").get<uint32_t>(), e.at("start_ns").get<uint64_t>()};
      if (auto r = send(k, SIGCONT); r) {
        ++continued;
        spdlog::warn("pid {} was left stopped by a previous daemon (killed while it stopped a tree): SIGCONT sent",
                     k.tgid);
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("ignoring {}: {}", path_, e.what());
  }
  clear();
  return continued;
}

}  // namespace fp
