// Synthetic probe data shared by the detection tests: slots, exit records,
// and a fake /proc.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <string>

#include "detect/detector.h"
#include "faultprobe/abi.h"
#include "probe/sample.h"

namespace fp::synthetic {

inline constexpr uint64_t kMs = 1'000'000;
inline constexpr uint64_t kSec = 1'000'000'000;
inline constexpr uint64_t kTick = 100 * kMs;
inline constexpr uint64_t kT0 = 1000 * kSec;  // the first tick of the tests: well after boot

// A live slot as the probe would fill it.
inline fp_proc proc(uint32_t tgid, uint64_t start_ns, const char* comm = "worker") {
  fp_proc p{};
  p.gen = 1;
  p.tgid = tgid;
  p.ppid = 1;
  p.start_ns = start_ns;
  std::memcpy(p.comm, comm, strnlen(comm, FP_COMM_LEN));
  return p;
}

inline ExitRecord exit_of(const fp_proc& p, uint64_t ts, uint32_t raw_code) {
  ExitRecord e;
  e.ts_ns = ts;
  e.exit_code = raw_code;
  e.final = p;
  return e;
}

// /proc as a map: processes not set are not found.
class FakeInfos : public ProcInfoSource {
 public:
  const ProcInfo& info(const ProcKey& k) override {
    auto it = infos.find(k.tgid);
    return it == infos.end() ? none_ : it->second;
  }
  void set(uint32_t pid, const std::string& comm, const std::string& exe, const std::string& cgroup,
           uint32_t uid = 0) {
    ProcInfo i;
    i.found = true;
    i.comm = comm;
    i.exe = exe;
    i.cgroup = cgroup;
    i.uid = uid;
    infos[pid] = i;
  }
  // exe defaults to /usr/bin/COMM
  void set(uint32_t pid, const std::string& comm, const std::string& cgroup) {
    set(pid, comm, "/usr/bin/" + comm, cgroup);
  }
  std::map<uint32_t, ProcInfo> infos;

 private:
  ProcInfo none_;
};

}  // namespace fp::synthetic
