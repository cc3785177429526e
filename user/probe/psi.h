// Pressure stall information (PSI): the kernel's account of the time tasks
// waited for CPU, memory or IO, host-wide in /proc/pressure/{cpu,memory,io}
// and per cgroup (v2) in <cgroup>/{cpu,memory,io}.pressure. Both have the
// same format and take the same triggers, so one reader serves both.
//
//   some avg10=1.23 avg60=0.50 avg300=0.10 total=123456
//   full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// A trigger ("some 200000 2000000": 200 ms of stall within any 2 s) written
// to a pressure file opened O_RDWR|O_NONBLOCK makes poll() on that fd report
// POLLPRI when it fires (Documentation/accounting/psi.rst): the daemon wakes
// on it instead of waiting for its next tick.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/fd.h"
#include "util/result.h"

namespace fp {

enum class PsiResource { Cpu, Memory, Io };
inline constexpr PsiResource kPsiResources[] = {PsiResource::Cpu, PsiResource::Memory, PsiResource::Io};
const char* psi_resource_name(PsiResource r);  // "cpu", "memory", "io"

struct PsiLine {
  double avg10 = 0, avg60 = 0, avg300 = 0;  // % of wall time stalled, decaying averages
  uint64_t total_us = 0;                    // cumulative stall time
};

struct PsiReading {
  PsiLine some;                 // at least one task stalled
  std::optional<PsiLine> full;  // every non-idle task stalled (absent for host cpu on old kernels)
};

// Parses a pressure file. Errors name what is wrong ("no \"some\" line", "bad avg10 ...").
Result<PsiReading> parse_psi(std::string_view text);

// A trigger: wake when `stall_us` of stall (some or full) accrue within `window_us`.
// The kernel accepts windows of 500 ms .. 10 s, but from a process without
// CAP_SYS_RESOURCE (a container's root, a sandboxed unit) only multiples of
// 2 s (EINVAL otherwise): the default window is 2 s so it works for both.
struct PsiTrigger {
  bool full = false;
  uint64_t stall_us = 200'000;
  uint64_t window_us = 2'000'000;
};
std::string psi_trigger_text(const PsiTrigger& t);  // "some 200000 2000000"

// Where one set of pressure files lives.
class PsiFiles {
 public:
  // /proc/pressure/<resource> (root given for tests).
  static PsiFiles host(std::string root = "/proc/pressure") { return PsiFiles(std::move(root), ""); }
  // <dir>/<resource>.pressure of a cgroup v2 directory.
  static PsiFiles cgroup(std::string dir) { return PsiFiles(std::move(dir), ".pressure"); }

  std::string path(PsiResource r) const;
  // Reads a file kept open from the first read on (pread at 0: the daemon
  // reads three of them at every tick, and open+close cost more than the
  // read); a read that fails closes it, and the next one opens it again.
  Result<PsiReading> read(PsiResource r) const;
  // An fd that polls POLLPRI when the trigger fires. Errors name the file.
  Result<Fd> open_trigger(PsiResource r, const PsiTrigger& t) const;

 private:
  PsiFiles(std::string dir, std::string suffix) : dir_(std::move(dir)), suffix_(std::move(suffix)) {}
  std::string dir_, suffix_;
  // The kept fds, by resource; a copy opens its own.
  struct OpenFiles {
    OpenFiles() = default;
    OpenFiles(const OpenFiles&) {}
    OpenFiles& operator=(const OpenFiles&) {
      for (Fd& f : fds) f.reset();
      return *this;
    }
    OpenFiles(OpenFiles&&) noexcept = default;
    OpenFiles& operator=(OpenFiles&&) noexcept = default;
    Fd fds[3];
  };
  mutable OpenFiles open_;
};

}  // namespace fp
