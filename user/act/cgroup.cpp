#include "act/cgroup.h"

#include <algorithm>
#include <array>
#include <set>

#include "act/cgroupfs.h"

namespace fp {
namespace {

// The kernel's v1 controller names. A v1 mount's super options mix them with
// plain options (rw, noprefix, release_agent=..., clone_children, ...), so a
// token counts as a controller only when it is one of these or name=NAME.
constexpr std::array<std::string_view, 15> kV1Controllers = {
    "cpu",  "cpuacct", "cpuset", "memory",  "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma",   "misc",    "debug"};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    size_t pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  for (auto w : split(s, ' '))
    if (!w.empty()) out.push_back(w);
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescape_octal(std::string_view s) {
  auto oct = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() &&
        oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
      out.push_back(char(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0')));
      i += 3;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

bool is_v1_controller(std::string_view opt) {
  if (opt.substr(0, 5) == "name=") return opt.size() > 5;
  return std::find(kV1Controllers.begin(), kV1Controllers.end(), opt) != kV1Controllers.end();
}

}  // namespace

CgroupLayout parse_cgroup_mounts(std::string_view mountinfo_text, const std::string& fs_root) {
  CgroupLayout layout;
  bool v2_whole = false;
  std::set<std::string> v1_whole;  // controllers whose entry is a mount of the hierarchy's root
  for (auto line : split(mountinfo_text, '\n')) {
    auto f = words(line);
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 6 || dash == f.end() || dash - f.begin() < 6 || f.end() - dash < 4) continue;
    std::string_view fstype = dash[1], superopts = dash[3];
    bool whole = f[3] == "/";
    std::string mount = unescape_octal(f[4]);
    if (fstype == "cgroup2") {
      if (layout.v2_root.empty() || (whole && !v2_whole)) {
        layout.v2_root = mount;
        v2_whole = whole;
      }
    } else if (fstype == "cgroup") {
      for (auto opt : split(superopts, ',')) {
        if (!is_v1_controller(opt)) continue;
        std::string ctrl(opt);
        auto it = layout.v1.find(ctrl);
        if (it == layout.v1.end() || (whole && !v1_whole.count(ctrl))) {
          layout.v1[ctrl] = mount;
          if (whole) v1_whole.insert(ctrl);
        }
      }
    }
  }
  if (!layout.v2_root.empty()) {
    if (auto text = read_text(fs_root + layout.v2_root + "/cgroup.controllers"); text.ok())
      for (auto w : words(trim(*text))) layout.v2_controllers.emplace_back(w);
  }
  return layout;
}

CgroupLayout detect_cgroups() {
  auto text = read_text("/proc/self/mountinfo");
  return parse_cgroup_mounts(text.ok() ? std::string_view(*text) : std::string_view());
}

ProcCgroups parse_proc_cgroups(std::string_view text) {
  ProcCgroups out;
  for (auto line : split(text, '\n')) {
    line = trim(line);
    // HIERARCHY-ID:CONTROLLERS:PATH; the path may itself contain ':'.
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view ctrls = line.substr(c1 + 1, c2 - c1 - 1);
    std::string path(line.substr(c2 + 1));
    if (path.empty()) continue;
    if (line.substr(0, c1) == "0" && ctrls.empty()) {
      out.v2 = path;
      continue;
    }
    for (auto c : split(ctrls, ','))
      if (!c.empty()) out.v1[std::string(c)] = path;
  }
  return out;
}

std::vector<std::string> default_io_devices(const std::string& sys_root) {
  std::vector<std::string> out;
  for (const auto& name : list_subdirs(sys_root + "/block")) {
    // Loop, ram and zram devices are backed by memory or by a file on another
    // disk: a limit there would count the same bytes twice or none at all.
    if (name.rfind("loop", 0) == 0 || name.rfind("ram", 0) == 0 || name.rfind("zram", 0) == 0) continue;
    auto dev = read_text(sys_root + "/block/" + name + "/dev");
    if (!dev.ok()) continue;
    auto d = trim(*dev);
    if (d.find(':') != std::string_view::npos) out.emplace_back(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace fp
