// What the kernel itself says about a process's cgroups and CPU use, read
// straight from /proc and cgroupfs: the ground truth the e2e and vm tests
// hold the daemon's numbers and actions against.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fp::e2e {

// The cgroup of `pid` for one v1 controller ("cpu", "memory", ...), "" if
// the process is gone or the controller is not a v1 hierarchy.
std::string cgroup_of(uint32_t pid, const std::string& controller);
// The cgroup v2 path of `pid` ("0::PATH" in /proc/PID/cgroup), "" if none.
std::string cgroup2_of(uint32_t pid);

// Share of one core `pid` used over `span`, from its utime + stime.
double proc_cpu_share(uint32_t pid, std::chrono::milliseconds span);
// Share of one core a cgroup v2 group used over `span`, from its cpu.stat
// usage_usec; -1 if it cannot be read.
double cgroup2_cpu_share(const std::string& group, std::chrono::milliseconds span);

}  // namespace fp::e2e
