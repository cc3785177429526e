// Context-switch-heavy load: two processes bounce a byte over pipes.
// Usage: bench_pingpong [seconds=2]
// Last line: bench pingpong: round_trips_per_s=N
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  int a[2], b[2];
  if (pipe(a) || pipe(b)) return 1;
  pid_t k = fork();
  if (k == 0) {
    close(a[1]);  // or the read below never sees EOF
    close(b[0]);
    char c;
    while (read(a[0], &c, 1) == 1)
      if (write(b[1], &c, 1) != 1) break;
    _exit(0);
  }
  close(a[0]);
  close(b[1]);
  char c = 'x';
  long n = 0;
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(secs);
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 1000; i++) {
      if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1) return 1;
    }
    n += 1000;
  }
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  close(a[1]);
  waitpid(k, nullptr, 0);
  std::printf("bench pingpong: round_trips_per_s=%.0f\n", double(n) / el);
  return 0;
}
