#include "act/throttle_state.h"


#include <cerrno>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "act/cgroupfs.h"
#include "util/atomic_file.h"
#include "util/text.h"

namespace fp {
namespace {

using nlohmann::json;

constexpr std::pair<ThrottlePlace::Mode, const char*> kModes[] = {
    {ThrottlePlace::Mode::Limit, "limit"}, {ThrottlePlace::Mode::Child, "child"}, {ThrottlePlace::Mode::Leaf, "leaf"}};

json place_to_json(const ThrottlePlace& p) {
  json saved = json::array();
  for (const auto& s : p.saved)
    saved.push_back({{"controller", s.controller}, {"file", s.file}, {"device", s.device}, {"value", s.value}});
  return {{"hierarchy", p.hierarchy}, {"mode", place_mode_name(p.mode)},
          {"original", p.original},   {"group", p.group},
          {"leaf", p.leaf},           {"saved", saved},
          {"enabled", p.enabled}};
}

ThrottlePlace place_from_json(const json& j) {
  ThrottlePlace p;
  p.hierarchy = j.at("hierarchy").get<std::string>();
  std::string mode = j.at("mode").get<std::string>();
  bool known = false;
  for (const auto& [m, name] : kModes)
    if (mode == name) {
      p.mode = m;
      known = true;
    }
  if (!known) throw std::invalid_argument("unknown place mode \"" + mode + "\"");
  p.original = j.at("original").get<std::string>();
  p.group = j.at("group").get<std::string>();
  p.leaf = j.value("leaf", "");
  for (const auto& s : j.value("saved", json::array()))
    p.saved.push_back(SavedValue{s.at("controller").get<std::string>(), s.at("file").get<std::string>(),
                                 s.value("device", ""), s.at("value").get<std::string>()});
  p.enabled = j.value("enabled", std::vector<std::pair<std::string, std::string>>{});
  return p;
}

}  // namespace

nlohmann::json limits_to_json(const ThrottleLimits& l) {
  json j = json::object();
  if (l.cpu_share) j["cpu_share"] = *l.cpu_share;
  if (l.memory_bytes) j["memory_bytes"] = *l.memory_bytes;
  if (l.io_bps) j["io_bps"] = *l.io_bps;
  if (l.pids) j["pids"] = *l.pids;
  return j;
}

ThrottleLimits limits_from_json(const nlohmann::json& j) {
  ThrottleLimits l;
  if (j.contains("cpu_share")) l.cpu_share = j.at("cpu_share").get<double>();
  if (j.contains("memory_bytes")) l.memory_bytes = j.at("memory_bytes").get<uint64_t>();
  if (j.contains("io_bps")) l.io_bps = j.at("io_bps").get<uint64_t>();
  if (j.contains("pids")) l.pids = j.at("pids").get<uint64_t>();
  return l;
}


const char* place_mode_name(ThrottlePlace::Mode m) {
  for (const auto& [mode, name] : kModes)
    if (mode == m) return name;
  return "?";
}

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
      t.io_devices = e.value("io_devices", std::vector<std::string>{});
      if (e.contains("places")) {
        for (const auto& p : e.at("places")) t.places.push_back(place_from_json(p));
      } else {
        // The previous format: moved into one group at each hierarchy's root.
        std::string group = e.value("group", "");
        for (const auto& [h, orig] : e.value("original", std::map<std::string, std::string>{}))
          t.places.push_back(ThrottlePlace{h, ThrottlePlace::Mode::Child, orig, group, "", {}, {}});
      }
      st.entries.push_back(std::move(t));
    }
  } catch (const std::exception& ex) {  // json::exception, or an unknown mode
    return Error{EINVAL, path + ": not a faultprobe throttle state file: " + ex.what()};
  }
  return st;
}

Result<void> save_throttle_state(const std::string& path, const ThrottleState& state) {
  json list = json::array();
  for (const auto& t : state.entries) {
    json places = json::array();
    for (const auto& p : t.places) places.push_back(place_to_json(p));
    list.push_back({{"tgid", t.key.tgid},
                    {"start_ns", t.key.start_ns},
                    {"limits", limits_to_json(t.limits)},
                    {"io_devices", t.io_devices},
                    {"places", places}});
  }
  json j = {{"backend", state.backend}, {"throttles", list}};
  // A cgroup path is whatever its creator named it (a delegated subtree):
  // dump() would throw on one that is not UTF-8.
  std::string text = safe_dump(j, 2) + "\n";

  // Atomic replace: a reader (or the next daemon) sees the old table or the
  // new one, never half of one.
  return write_file_atomic(path, text);
}

}  // namespace fp
