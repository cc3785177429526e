// cpu_runaway and runq_starvation: processes that spin.
#include <sched.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "faultgen/faults.h"

namespace fg {

namespace {

constexpr int kCapSysNice = 23;
constexpr int kHogNice = -10;
constexpr int kStarveCpu = 0;
constexpr int64_t kVictimWorkNs = 1'000'000;
constexpr int64_t kVictimSleepNs = 1'000'000;

bool has_effective_cap(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> cap) & 1;
    }
  }
  return false;
}

// Pins the calling thread (and threads it creates later) to `cpu`, at `nice`.
void pin_and_nice(int cpu, int nice) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    child_fail_errno("sched_setaffinity(CPU " + std::to_string(cpu) + ")");
  }
  // Linux nice is per thread: set before creating threads so they inherit it.
  if (setpriority(PRIO_PROCESS, 0, nice) != 0) child_fail_errno("setpriority(" + std::to_string(nice) + ")");
}

}  // namespace

int run_cpu(Supervisor& sup, const CpuOptions& o) {
  auto child = sup.spawn("fg-cpu", [&](ChildContext& ctx) {
    start_spinners(o.threads);
    ctx.ready();
    spin_forever();
  });
  if (!child) return sup.fail(child.error());
  sup.announce("cpu_runaway", child->pid);
  return sup.hold();
}

Availability starve_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0 || !CPU_ISSET(kStarveCpu, &set)) {
    return {false, "CPU 0 is not in this process's allowed CPUs (both processes are pinned to it)"};
  }
  rlimit rl{};
  bool nice_by_rlimit = getrlimit(RLIMIT_NICE, &rl) == 0 &&
                        (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= static_cast<rlim_t>(20 - kHogNice));
  if (!has_effective_cap(kCapSysNice) && !nice_by_rlimit) {
    return {false, "cannot raise priority to nice -10 (needs CAP_SYS_NICE or RLIMIT_NICE >= 30)"};
  }
  return {};
}

int run_starve(Supervisor& sup, const StarveOptions& o) {
  if (Availability a = starve_available(); !a.ok) {
    std::fprintf(stderr, "%s: %s\n", sup.name().c_str(), a.missing.c_str());
    return kExitUnavailable;
  }
  auto hog = sup.spawn("fg-hog", [&](ChildContext& ctx) {
    pin_and_nice(kStarveCpu, kHogNice);
    start_spinners(o.hog_threads);
    ctx.ready();
    spin_forever();
  });
  if (!hog) return sup.fail(hog.error());
  auto victim = sup.spawn("fg-victim", [&](ChildContext& ctx) {
    pin_and_nice(kStarveCpu, o.victim_nice);
    ctx.ready();
    for (;;) {
      spin_cpu_ns(kVictimWorkNs);
      sleep_for(kVictimSleepNs);
    }
  });
  if (!victim) return sup.fail(victim.error());
  sup.announce("runq_starvation", hog->pid, {victim->pid});
  return sup.hold();
}

}  // namespace fg
