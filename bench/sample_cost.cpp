// How much one read of the probe costs with N idle processes alive.
// Usage: bench_sample_cost [N=10000] [reads=200]
// Measures the daemon's incremental refresh (dirty slots only) and, as a
// reference, a full copy of every slot.
// Last line: bench sample_cost: procs=N slots=S refresh_us_p50=.. refresh_us_p99=.. full_us_p50=.. full_us_p99=..
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "log.h"
#include "probe/probe.h"

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  int reads = argc > 2 ? std::atoi(argv[2]) : 200;
  fp::init_logging(0);
  auto probe = fp::Probe::start();
  if (!probe) {
    std::fprintf(stderr, "bench: %s\n", probe.error().message.c_str());
    return 1;
  }
  std::vector<pid_t> kids;
  kids.reserve(size_t(n));
  for (int i = 0; i < n; i++) {
    pid_t k = fork();
    if (k == 0) {
      pause();
      _exit(0);
    }
    if (k < 0) {
      std::perror("fork");
      break;
    }
    kids.push_back(k);
  }
  usleep(500'000);  // let every child run once (a slot is made on first schedule)
  fp::Sample s;
  auto measure = [&](auto&& fn) {
    std::vector<double> us;
    for (int i = 0; i < reads; i++) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      auto t1 = std::chrono::steady_clock::now();
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      usleep(10'000);  // a 100 Hz sampler's rhythm: the bitmap fills between reads
    }
    std::sort(us.begin(), us.end());
    return std::pair{us[us.size() / 2], us[us.size() * 99 / 100]};
  };
  (*probe)->refresh();
  auto inc = measure([&] { (*probe)->refresh(); });
  auto full = measure([&] { (*probe)->read_full(s); });
  (*probe)->read_full(s);
  size_t live = s.procs.size();
  for (auto k : kids) kill(k, SIGKILL);
  for (auto k : kids) waitpid(k, nullptr, 0);
  std::printf("bench sample_cost: procs=%zu slots=%zu refresh_us_p50=%.1f refresh_us_p99=%.1f "
              "full_us_p50=%.1f full_us_p99=%.1f\n",
              kids.size(), live, inc.first, inc.second, full.first, full.second);
  return 0;
}
