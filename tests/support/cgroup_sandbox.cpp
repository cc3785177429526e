#include "cgroup_sandbox.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "act/cgroup.h"

namespace fp::e2e {
namespace {

bool write_file(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return bool(out);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "state" field of /proc/PID/stat ('?' when gone).
char proc_state(pid_t pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto p = s.rfind(')');
  return p == std::string::npos || p + 2 >= s.size() ? '?' : s[p + 2];
}

// "key N" from a flat-keyed file (memory.events, memory.oom_control).
uint64_t keyed(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

}  // namespace

CgroupSandbox::CgroupSandbox(const std::string& name, std::vector<std::string> controllers) {
  path_ = "/" + name;
  CgroupLayout l = detect_cgroups();
  if (l.v1.count("freezer") && std::find(controllers.begin(), controllers.end(), "freezer") == controllers.end())
    controllers.push_back("freezer");
  std::string v2_enable;
  for (const std::string& c : controllers) {
    if (auto it = l.v1.find(c); it != l.v1.end()) {
      dirs_[c] = it->second + path_;
    } else if (!l.v2_root.empty() &&
               std::find(l.v2_controllers.begin(), l.v2_controllers.end(), c) != l.v2_controllers.end()) {
      dirs_[c] = l.v2_root + path_;
      on_v2_.insert(c);
      v2_ = true;
      v2_enable += " +" + c;
    } else if (c != "freezer") {
      error_ = "no cgroup controller \"" + c + "\" on this host (v1 or v2)";
      return;
    }
  }
  if (v2_ && !write_file(l.v2_root + "/cgroup.subtree_control", v2_enable.substr(1))) {
    error_ = "cannot enable" + v2_enable + " in " + l.v2_root + "/cgroup.subtree_control";
    return;
  }
  for (const std::string& d : dirs()) {
    std::error_code ec;
    std::filesystem::create_directory(d, ec);
    if (ec) {
      error_ = "cannot create " + d + ": " + ec.message();
      return;
    }
  }
}

CgroupSandbox::~CgroupSandbox() {
  kill_all();
  for (const std::string& d : dirs())
    for (int i = 0; i < 100 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::vector<std::string> CgroupSandbox::dirs() const {
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (const auto& [c, d] : dirs_)
    if (seen.insert(d).second) out.push_back(d);
  return out;
}

std::string CgroupSandbox::dir(const std::string& controller) const {
  auto it = dirs_.find(controller);
  return it == dirs_.end() ? "" : it->second;
}

bool CgroupSandbox::set(const std::string& controller, const std::string& file, const std::string& value) const {
  return write_file(dir(controller) + "/" + file, value);
}

std::string CgroupSandbox::get(const std::string& controller, const std::string& file) const {
  return read_file(dir(controller) + "/" + file);
}

bool CgroupSandbox::limit_pids(uint64_t n) const { return set("pids", "pids.max", std::to_string(n)); }

bool CgroupSandbox::limit_memory(uint64_t bytes) const {
  return set("memory", on_v2_.count("memory") ? "memory.max" : "memory.limit_in_bytes", std::to_string(bytes));
}

bool CgroupSandbox::limit_cpu(double share, long period_us) const {
  const auto quota = std::to_string(static_cast<long>(share * double(period_us)));
  const auto period = std::to_string(period_us);
  if (on_v2_.count("cpu")) return set("cpu", "cpu.max", quota + " " + period);
  return set("cpu", "cpu.cfs_period_us", period) && set("cpu", "cpu.cfs_quota_us", quota);
}

uint64_t CgroupSandbox::oom_kills() const {
  return keyed(get("memory", on_v2_.count("memory") ? "memory.events" : "memory.oom_control"), "oom_kill");
}

std::vector<std::string> CgroupSandbox::wrap(const std::vector<std::string>& argv) const {
  std::string script;
  for (const std::string& d : dirs()) script += "echo $$ > '" + d + "/cgroup.procs' || exit 126; ";
  script += "exec \"$@\"";
  std::vector<std::string> out = {"/bin/sh", "-c", script, "sh"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<pid_t> CgroupSandbox::pids() const {
  std::set<pid_t> out;
  for (const std::string& d : dirs()) {
    std::istringstream in(read_file(d + "/cgroup.procs"));
    pid_t p = 0;
    while (in >> p)
      if (char st = proc_state(p); st != 'Z' && st != 'X' && st != '?') out.insert(p);
  }
  return {out.begin(), out.end()};
}

bool CgroupSandbox::freeze(bool on) const {
  if (dirs_.count("freezer") && !on_v2_.count("freezer"))
    return set("freezer", "freezer.state", on ? "FROZEN" : "THAWED");
  for (const std::string& d : dirs())
    if (std::filesystem::exists(d + "/cgroup.freeze")) return write_file(d + "/cgroup.freeze", on ? "1" : "0");
  return false;
}

void CgroupSandbox::kill_all() const {
  for (int round = 0; round < 200; ++round) {
    std::vector<pid_t> left = pids();
    if (left.empty()) return;
    const bool frozen = freeze(true);
    if (frozen) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (pid_t p : left) ::kill(p, SIGKILL);
    // v2's cgroup.kill does it all at once where the kernel has it.
    for (const std::string& d : dirs())
      if (std::filesystem::exists(d + "/cgroup.kill")) write_file(d + "/cgroup.kill", "1");
    if (frozen) freeze(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace fp::e2e
