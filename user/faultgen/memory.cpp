// memory_leak: a process whose RSS grows at a steady rate, then holds.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "faultgen/faults.h"
#include "faultgen/logic.h"

namespace fg {

namespace {

constexpr int64_t kStepNs = 100'000'000;  // allocate every ~100 ms

[[noreturn]] void leak_body(ChildContext& ctx, const LeakOptions& o) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t max = static_cast<uint64_t>(std::llround(o.max_mb * static_cast<double>(kMiB)));
  const double rate = o.rate_mb * static_cast<double>(kMiB);
  // One reservation up front; pages become resident as they are touched.
  void* mem = mmap(nullptr, max, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) child_fail_errno("mmap(" + std::to_string(max) + " bytes)");
  // Small pages: RSS grows step by step, not in 2 MiB jumps.
  if (madvise(mem, max, MADV_NOHUGEPAGE) != 0) child_fail_errno("madvise(MADV_NOHUGEPAGE)");
  auto* base = static_cast<unsigned char*>(mem);

  ctx.ready();
  const int64_t start = mono_ns();
  uint64_t touched = 0;
  for (int64_t step = 1; touched < max - max % page; ++step) {
    sleep_until(start + step * kStepNs);
    uint64_t due = due_bytes(rate, mono_ns() - start, page, max);
    if (due > touched) {
      std::memset(base + touched, 0xa5, due - touched);
      touched = due;
    }
  }
  for (;;) pause();  // hold it
}

}  // namespace

int run_leak(Supervisor& sup, const LeakOptions& o) {
  auto child = sup.spawn("fg-leak", [&](ChildContext& ctx) { leak_body(ctx, o); });
  if (!child) return sup.fail(child.error());
  sup.announce("memory_leak", child->pid);
  return sup.hold();
}

}  // namespace fg
