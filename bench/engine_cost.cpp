// What one Engine::tick costs (the detectors and the process table, no probe):
// N idle processes plus C that change at every tick, at a 10 ms interval, with
// the built-in rules. Thread CPU time per tick, so it holds on a loaded host.
// Usage: bench_engine_cost [idle=10000] [changing=1] [ticks=3000]
// Last line: bench engine_cost: idle=N changing=C tick_us_p50=.. tick_us_p99=.. tick_us_mean=.. history_bytes_per_proc=..
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "config/config.h"
#include "detect/engine.h"

namespace {

uint64_t thread_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

class NoInfos : public fp::ProcInfoSource {
 public:
  const fp::ProcInfo& info(const fp::ProcKey&) override { return none_; }

 private:
  fp::ProcInfo none_;
};

}  // namespace

int main(int argc, char** argv) {
  const uint32_t idle = argc > 1 ? uint32_t(std::atoi(argv[1])) : 10000;
  const uint32_t changing = argc > 2 ? uint32_t(std::atoi(argv[2])) : 1;
  const int ticks = argc > 3 ? std::atoi(argv[3]) : 3000;
  constexpr uint64_t kTick = 10'000'000;

  fp::Config cfg = fp::default_config();
  cfg.sample_interval = std::chrono::nanoseconds(kTick);
  fp::HostInfo host;
  host.ncpus = 2;
  host.mem_total_bytes = 4ull << 30;
  NoInfos infos;
  fp::Engine engine(cfg, host, infos, 1);

  const uint32_t n = idle + changing;
  std::vector<fp_proc> slots(n);
  uint64_t now = 1'000'000'000'000ull;
  for (uint32_t i = 0; i < n; ++i) {
    fp_proc& p = slots[i];
    std::memset(&p, 0, sizeof p);
    p.gen = 1;
    p.tgid = 10 + i;
    p.ppid = 1;
    p.start_ns = now - 5'000'000'000ull - i;
    p.first_seen_ns = now - 1'000'000'000ull;
    p.rss_pages[0] = 1000;
    p.rss_pages[1] = 1000 + i % 7;
    p.cpu_ns = 1'000'000ull * i;
    p.nvcsw = i;
    std::snprintf(p.comm, sizeof p.comm, "%s%u", i < idle ? "idle" : "busy", i);
  }
  fp::EventBatch events;
  std::vector<fp::SlotChange> changed;
  for (uint32_t i = 0; i < n; ++i) changed.push_back({i, &slots[i]});
  engine.tick(now, changed, events);

  std::vector<uint64_t> cost;
  cost.reserve(size_t(ticks));
  const int warm = 6500;  // past the longest window (60 s): steady state
  for (int t = 0; t < warm + ticks; ++t) {
    now += kTick;
    changed.clear();
    for (uint32_t i = idle; i < n; ++i) {
      fp_proc& p = slots[i];
      p.cpu_ns += 300'000 + (t % 5) * 1000;  // ~3 % of a core, like faultprobed itself
      p.runq_wait_ns += 20'000;
      p.runq_waits += 2;
      p.runq_hist[4] += 2;
      p.nvcsw += 2;
      p.nivcsw += t % 3 == 0;
      if (t % 50 == 0) p.page_faults += 3;
      changed.push_back({i, &p});
    }
    uint64_t c0 = thread_ns();
    engine.tick(now, changed, events);
    uint64_t c1 = thread_ns();
    if (t >= warm) cost.push_back(c1 - c0);
  }
  std::vector<uint64_t> s = cost;
  std::sort(s.begin(), s.end());
  uint64_t sum = 0;
  for (uint64_t c : cost) sum += c;
  auto pct = [&](double q) { return double(s[size_t(q * double(s.size() - 1))]) / 1000.0; };
  std::printf("bench engine_cost: idle=%u changing=%u tick_us_p50=%.1f tick_us_p99=%.1f tick_us_mean=%.1f "
              "history_bytes_per_proc=%.0f\n",
              idle, changing, pct(0.5), pct(0.99), double(sum) / double(cost.size()) / 1000.0,
              double(engine.table().memory_bytes()) / double(engine.table().size()));
  return 0;
}
