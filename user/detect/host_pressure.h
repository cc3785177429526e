// The host's pressure at one tick, for host_pressure rules: PSI (some/full
// stall shares and the stall time since the previous read, per resource) and
// the utilisation the seed's example rules name (CPU busy %, memory used %,
// disk IO rate). PressureInputs reads it before the engine's tick and owns
// the PSI triggers the daemon's loop polls on.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "probe/psi.h"
#include "util/fd.h"

namespace fp {

// Utilisation over the last second (report/view.h's HostSampler measures it).
struct HostUtil {
  double cpu_pct = 0;       // busy % of all CPUs
  double mem_used_pct = 0;  // 100 * (1 - MemAvailable / MemTotal)
  double io_bps = 0;        // bytes/s read + written on all block devices
};
// MemAvailable, not MemFree: page cache the kernel can drop at once is not "used".
HostUtil host_util(double cpu_pct, uint64_t mem_total_bytes, uint64_t mem_available_bytes, double io_read_bps,
                   double io_write_bps);

struct ResourcePressure {
  bool ok = false;       // read at this tick
  std::string error;     // why not (names the file)
  PsiReading psi;
  uint64_t some_delta_us = 0, full_delta_us = 0;  // stall time since the previous read
};

struct HostPressure {
  uint64_t read_ns = 0;  // CLOCK_MONOTONIC of the read
  ResourcePressure psi[3];  // by PsiResource
  std::optional<HostUtil> util;
  const ResourcePressure& of(PsiResource r) const { return psi[static_cast<size_t>(r)]; }
};
nlohmann::json pressure_json(const ResourcePressure& p);  // {"some": {...}, "full": {...}, "stall_us": n}

// Reads one set of pressure files (the host's, or a cgroup v2 directory's:
// the same interface) and keeps their triggers.
class PressureInputs {
 public:
  explicit PressureInputs(PsiFiles files = PsiFiles::host(), PsiTrigger trigger = {})
      : files_(std::move(files)), trigger_(trigger) {}
  // One trigger per resource. A resource whose file cannot take one (PSI
  // absent, a kernel booted with psi=0) is read at every tick only; the
  // error is logged once, naming the file.
  void arm();
  // The trigger fds to poll for POLLPRI.
  std::vector<int> trigger_fds() const;
  // A trigger fd polled POLLPRI (or POLLERR: its file went away, it is dropped).
  void fired(int fd, bool error);
  // Reads every resource; a resource that cannot be read says why (logged once).
  void read(uint64_t now_ns);
  void set_util(const HostUtil& u) { now_.util = u; }
  const HostPressure& now() const { return now_; }
  // {"cpu": {...}, ..., "triggers": n, "wakeups": n, "errors": [...]}
  nlohmann::json status() const;

 private:
  PsiFiles files_;
  PsiTrigger trigger_;
  HostPressure now_;
  std::optional<PsiReading> last_[3];
  std::vector<std::pair<PsiResource, Fd>> triggers_;
  std::set<std::string> reported_;  // errors already logged
  uint64_t wakeups_ = 0;
};

}  // namespace fp
