#include "act/throttle_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "act/cgroupfs.h"
#include "util/text.h"

namespace fp {
namespace {

using nlohmann::json;

json limits_to_json(const ThrottleLimits& l) {
  json j = json::object();
  if (l.cpu_share) j["cpu_share"] = *l.cpu_share;
  if (l.memory_bytes) j["memory_bytes"] = *l.memory_bytes;
  if (l.io_bps) j["io_bps"] = *l.io_bps;
  if (l.pids) j["pids"] = *l.pids;
  return j;
}

ThrottleLimits limits_from_json(const json& j) {
  ThrottleLimits l;
  if (j.contains("cpu_share")) l.cpu_share = j.at("cpu_share").get<double>();
  if (j.contains("memory_bytes")) l.memory_bytes = j.at("memory_bytes").get<uint64_t>();
  if (j.contains("io_bps")) l.io_bps = j.at("io_bps").get<uint64_t>();
  if (j.contains("pids")) l.pids = j.at("pids").get<uint64_t>();
  return l;
}

}  // namespace

Result<ThrottleState> load_throttle_state(const std::string& path) {
  auto text = read_text(path);
  if (!text.ok()) {
    if (text.error().code == ENOENT) return ThrottleState{};
    return text.error();
  }
  ThrottleState st;
  try {
    json j = json::parse(*text);
    unescape_json_strings(j);  // cgroup paths are kept escaped (safe_dump below): back to their bytes
    st.backend = j.value("backend", "");
    for (const auto& e : j.at("throttles")) {
      ThrottleEntry t;
      t.key.tgid = e.at("tgid").get<uint32_t>();
      t.key.start_ns = e.at("start_ns").get<uint64_t>();
      t.limits = limits_from_json(e.value("limits", json::object()));
      t.group = e.value("group", "");
      t.original = e.value("original", std::map<std::string, std::string>{});
      t.io_devices = e.value("io_devices", std::vector<std::string>{});
      st.entries.push_back(std::move(t));
    }
  } catch (const json::exception& ex) {
    return Error{EINVAL, path + ": not a faultprobe throttle state file: " + ex.what()};
  }
  return st;
}

Result<void> save_throttle_state(const std::string& path, const ThrottleState& state) {
  json list = json::array();
  for (const auto& t : state.entries) {
    list.push_back({{"tgid", t.key.tgid},
                    {"start_ns", t.key.start_ns},
                    {"limits", limits_to_json(t.limits)},
                    {"group", t.group},
                    {"original", t.original},
                    {"io_devices", t.io_devices}});
  }
  json j = {{"backend", state.backend}, {"throttles", list}};
  // A cgroup path is whatever its creator named it (a delegated subtree):
  // dump() would throw on one that is not UTF-8.
  std::string text = safe_dump(j, 2) + "\n";

  std::error_code ec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return Error::from_errno(ec.value(), "creating " + parent.string());

  // Atomic replace: a reader (or the next daemon) sees the old table or the
  // new one, never half of one.
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Error::from_errno(errno, "creating " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error::from_errno(err, "writing " + tmp);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Error::from_errno(err, "syncing " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Error::from_errno(err, "renaming " + tmp + " to " + path);
  }
  return {};
}

}  // namespace fp
