#include "daemon/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "util/text.h"

namespace fp {
namespace {

const char* const kFile = "/open-faults.json";

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// Writes `text` to `path` atomically (tmp + rename), readable by root only.
// Unlike write_file_atomic (util/atomic_file.h) it does not fsync: the file
// is small and rewritten at every change of the set, from the sampling thread.
bool write_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return false;
  bool ok = ::fchmod(fd, 0600) == 0;  // a .tmp left by an older daemon keeps its mode otherwise
  for (size_t done = 0; ok && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += size_t(n);
  }
  ok = ::close(fd) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

void save_open_faults(const std::string& state_dir, const std::vector<FaultRecord>& open) {
  nlohmann::json j;
  j["boot_id"] = boot_id();
  j["open"] = nlohmann::json::array();
  for (const auto& f : open) j["open"].push_back(fault_state_to_json(f));
  if (!write_atomic(state_dir + kFile, safe_dump(j)))
    spdlog::warn("cannot write {}{}: {}", state_dir, kFile, std::strerror(errno));
}

std::vector<FaultRecord> load_open_faults(const std::string& state_dir) {
  std::ifstream in(state_dir + kFile);
  if (!in) return {};
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("ignoring a malformed {}{}", state_dir, kFile);
    return {};
  }
  if (j.value("boot_id", "") != boot_id()) return {};  // another boot: those processes are gone
  unescape_json_strings(j);  // names are kept escaped (safe_dump): the model holds the bytes
  std::vector<FaultRecord> open;
  for (const auto& f : j.value("open", nlohmann::json::array()))
    if (auto r = fault_state_from_json(f)) open.push_back(*r);
  return open;
}

}  // namespace fp
