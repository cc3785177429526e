// How long a CPU quota held a process off the CPU: runq_starvation's check
// that a "victim" is not simply out of its own quota.
//
// The kernel counts the time a task of a bandwidth-throttled group spends
// throttled as run-queue wait (measured on 6.18: a spinner in a cpu cgroup
// with a 10 % quota waited 1.2 s per second by /proc/PID/schedstat while
// nothing else wanted its CPU). Such a process is not starved by whoever ran
// meanwhile; it is held by its own (or its container's) limit, or by a
// throttle faultprobed itself applied. The time comes from the cgroup's
// cpu.stat (v1 throttled_time ns, v2 throttled_usec), for the process's cpu
// cgroup and every ancestor with a quota (v1 cpu.cfs_quota_us != -1, v2
// cpu.max not "max"): a throttle at any level stops the task, so the largest
// of them counts.
//
// Only the processes runq_starvation is about to name as victims are asked
// about (a few per tick, while somebody waits); quotas are re-read every
// refresh, cpu.stat at every question, and kept over the rule's window.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

#include "act/cgroup.h"
#include "act/cgroup_ops.h"
#include "detect/cgroup_paths.h"
#include "probe/sample.h"

namespace fp {

struct QuotaWait {
  uint64_t throttled_ns = 0;  // throttled within span_ns (the largest over the limited groups)
  uint64_t span_ns = 0;       // how far back the readings reach (0: first reading, nothing known yet)
  std::string group;          // the cgroup whose quota held it longest
};

class CpuQuotaSource {
 public:
  virtual ~CpuQuotaSource() = default;
  // Nullopt: no CPU quota on the process's cgroup or any ancestor (or no cpu
  // controller, or the process is gone).
  virtual std::optional<QuotaWait> quota_wait(const ProcKey& k, uint64_t now_ns, uint64_t window_ns) = 0;
};

class CgroupCpuQuota : public CpuQuotaSource {
 public:
  static constexpr uint64_t kDefaultRefreshNs = 2'000'000'000ull;
  CgroupCpuQuota(const CgroupLayout& layout, CgroupOps& ops, std::string proc_root = "/proc",
                 uint64_t refresh_ns = kDefaultRefreshNs);
  std::optional<QuotaWait> quota_wait(const ProcKey& k, uint64_t now_ns, uint64_t window_ns) override;
  uint64_t reads() const { return paths_.reads(); }

 private:
  struct Sample {
    uint64_t at_ns;
    uint64_t throttled_ns;
  };
  struct Group {
    uint64_t quota_read_ns = 0;
    bool limited = false;
    uint64_t sampled_ns = 0;  // the last cpu.stat reading's time (one per tick whoever asks)
    uint64_t asked_ns = 0;
    std::deque<Sample> samples;
  };
  Group& group(const std::string& path, uint64_t now_ns);
  std::optional<uint64_t> throttled_total(const std::string& dir);
  void sweep(uint64_t now_ns);

  ControllerPaths paths_;
  std::map<std::string, Group> groups_;
  uint64_t next_sweep_ns_ = 0;
};

// The throttled time in a cpu.stat text (v1 "throttled_time NS", v2
// "throttled_usec US"), in ns; nullopt when neither is there.
std::optional<uint64_t> cpu_stat_throttled_ns(const std::string& text);

}  // namespace fp
