#include "cgroup_read.h"

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

namespace fp::e2e {

namespace {

std::string proc_file(uint32_t pid, const char* name) { return "/proc/" + std::to_string(pid) + "/" + name; }

// usage_usec of a cgroup v2 group's cpu.stat, in seconds; -1 if unreadable.
double cgroup2_usage_s(const std::string& group) {
  std::ifstream in("/sys/fs/cgroup" + group + "/cpu.stat");
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v)
    if (k == "usage_usec") return double(v) / 1e6;
  return -1;
}

// utime + stime of `pid` in clock ticks (fields 14 and 15 of its stat,
// counted after the comm, which may hold spaces and parentheses).
double cpu_ticks(uint32_t pid) {
  std::ifstream in(proc_file(pid, "stat"));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0.0;
  std::stringstream ss(s.substr(p + 2));
  std::string f;
  double ut = 0, st = 0;
  for (int i = 3; i <= 15 && ss >> f; ++i) {
    if (i == 14) ut = std::stod(f);
    if (i == 15) st = std::stod(f);
  }
  return ut + st;
}

}  // namespace

std::string cgroup_of(uint32_t pid, const std::string& controller) {
  std::ifstream in(proc_file(pid, "cgroup"));
  std::string line;
  while (std::getline(in, line)) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::stringstream ss(ctrls);
    std::string c;
    while (std::getline(ss, c, ','))
      if (c == controller) return line.substr(b + 1);
  }
  return "";
}

std::string cgroup2_of(uint32_t pid) {
  std::ifstream in(proc_file(pid, "cgroup"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return "";
}

double proc_cpu_share(uint32_t pid, std::chrono::milliseconds span) {
  double a = cpu_ticks(pid);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(span);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return (cpu_ticks(pid) - a) / double(sysconf(_SC_CLK_TCK)) / secs;
}

double cgroup2_cpu_share(const std::string& group, std::chrono::milliseconds span) {
  double a = cgroup2_usage_s(group);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(span);
  double b = cgroup2_usage_s(group);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return a < 0 || b < 0 ? -1 : (b - a) / secs;
}

}  // namespace fp::e2e
