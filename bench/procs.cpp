// Process loads for the bench/ scripts, cheap enough for 10,000 processes on
// 2 vCPUs (no interpreter per process).
//
//   bench_procs sleepers N
//       forks N children that sleep in pause(); prints "ready N". Then reads
//       commands on stdin: "poke" sends every child SIGUSR1 (each wakes once,
//       so a probe loaded after they were born sees them) and answers
//       "poked"; EOF kills and reaps them all.
//   bench_procs short N LIFE_US PIDFILE [MAX_ALIVE=8]
//       N children that each live LIFE_US (sleeping) and exit 0, at most
//       MAX_ALIVE at once; their pids go to PIDFILE, one a line.
//       Last line: "bench short: n=N elapsed_s=S rate=R".
//   bench_procs signals RATE SECONDS
//       raises SIGSEGV (handled, so the process lives) RATE times a second:
//       one fatal-class signal event per raise for the probe's ring buffer.
//       Last line: "bench signals: sent=N elapsed_s=S rate=R".
//   bench_procs exits SECONDS [WORKERS=2]
//       WORKERS processes fork children that exit at once, as fast as they
//       can. Last line: "bench exits: n=N elapsed_s=S rate=R".
//   bench_procs accuracy DIR IO_MB RSS_MB ROUND_TRIPS CPU_MS
//       ground truth for the probe's counters: ROUND_TRIPS pipe round trips
//       with a child (voluntary switches), CPU_MS of spinning, IO_MB written
//       then read back with O_DIRECT in DIR, RSS_MB touched. Prints
//       {"pid":..,"ready":true}, waits for a line on stdin, then prints the
//       truth from /proc/self ({"pid","nvcsw","nivcsw","cpu_ns","rss_kb",
//       "io_read_bytes","io_write_bytes","written","read"}) and exits 0.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

void on_usr1(int) {}
volatile sig_atomic_t g_segv = 0;
void on_segv(int) { g_segv = g_segv + 1; }

int sleepers(int n) {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, nullptr);
  std::vector<pid_t> kids;
  kids.reserve(size_t(n));
  for (int i = 0; i < n; i++) {
    pid_t k = fork();
    if (k == 0) {
      for (;;) pause();
    }
    if (k < 0) {
      std::fprintf(stderr, "bench_procs: fork %d of %d: %s\n", i, n, std::strerror(errno));
      break;
    }
    kids.push_back(k);
  }
  std::printf("ready %zu\n", kids.size());
  std::fflush(stdout);
  char line[64];
  while (std::fgets(line, sizeof line, stdin)) {
    if (std::strncmp(line, "poke", 4) == 0) {
      for (auto k : kids) kill(k, SIGUSR1);
      std::printf("poked\n");
      std::fflush(stdout);
    }
  }
  for (auto k : kids) kill(k, SIGKILL);
  for (auto k : kids) waitpid(k, nullptr, 0);
  return kids.size() == size_t(n) ? 0 : 1;
}

int short_lived(int n, long life_us, const char* pidfile, int max_alive) {
  FILE* f = std::fopen(pidfile, "w");
  if (!f) {
    std::perror(pidfile);
    return 1;
  }
  double t0 = now_s();
  int alive = 0, started = 0;
  while (started < n || alive > 0) {
    while (started < n && alive < max_alive) {
      pid_t k = fork();
      if (k == 0) {
        timespec ts{life_us / 1000000, (life_us % 1000000) * 1000};
        nanosleep(&ts, nullptr);
        _exit(0);
      }
      if (k < 0) {
        std::perror("fork");
        break;
      }
      std::fprintf(f, "%d\n", k);
      started++;
      alive++;
    }
    if (waitpid(-1, nullptr, 0) > 0) alive--;
  }
  std::fclose(f);
  double el = now_s() - t0;
  std::printf("bench short: n=%d elapsed_s=%.3f rate=%.0f\n", started, el, started / el);
  return 0;
}

int signals(double rate, double secs) {
  struct sigaction sa {};
  sa.sa_handler = on_segv;
  sa.sa_flags = SA_NODEFER;
  sigaction(SIGSEGV, &sa, nullptr);
  double t0 = now_s(), end = t0 + secs;
  long sent = 0;
  for (;;) {
    double t = now_s();
    if (t >= end) break;
    long due = long((t - t0) * rate);
    if (sent >= due) {
      // ahead of the rate: sleep until the next batch is due
      timespec ts{0, 200'000};
      nanosleep(&ts, nullptr);
      continue;
    }
    long batch = std::min(due - sent, 1000L);
    for (long i = 0; i < batch; i++) raise(SIGSEGV);
    sent += batch;
  }
  double el = now_s() - t0;
  std::printf("bench signals: sent=%ld handled=%ld elapsed_s=%.3f rate=%.0f\n", sent, long(g_segv), el, sent / el);
  return 0;
}

int exits(double secs, int workers) {
  int fds[2];
  if (pipe(fds) != 0) return 1;
  double t0 = now_s();
  for (int w = 0; w < workers; w++) {
    if (fork() == 0) {
      close(fds[0]);
      long n = 0;
      while (now_s() - t0 < secs) {
        pid_t k = vfork();
        if (k == 0) _exit(0);
        if (k > 0) {
          waitpid(k, nullptr, 0);
          n++;
        }
      }
      if (write(fds[1], &n, sizeof n) != sizeof n) _exit(1);
      _exit(0);
    }
  }
  close(fds[1]);
  long total = 0, n = 0;
  while (read(fds[0], &n, sizeof n) == sizeof n) total += n;
  while (wait(nullptr) > 0) {
  }
  double el = now_s() - t0;
  std::printf("bench exits: n=%ld elapsed_s=%.3f rate=%.0f\n", total, el, double(total) / el);
  return 0;
}

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long long field(const std::string& text, const char* key) {
  auto at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::atoll(text.c_str() + at + std::strlen(key));
}

int accuracy(const char* dir, long io_mb, long rss_mb, long trips, long cpu_ms) {
  // 1. voluntary switches: round trips with a child over two pipes
  int a[2], b[2];
  if (pipe(a) || pipe(b)) return 1;
  pid_t k = fork();
  if (k == 0) {
    close(a[1]);
    close(b[0]);
    char c;
    while (read(a[0], &c, 1) == 1)
      if (write(b[1], &c, 1) != 1) break;
    _exit(0);
  }
  close(a[0]);
  close(b[1]);
  char c = 'x';
  for (long i = 0; i < trips; i++)
    if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1) return 1;
  close(a[1]);
  waitpid(k, nullptr, 0);
  close(b[0]);
  // 2. CPU
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  double cend = double(ts.tv_sec) + double(ts.tv_nsec) / 1e9 + double(cpu_ms) / 1000.0;
  volatile unsigned long spin = 0;
  for (;;) {
    for (int i = 0; i < 100000; i++) spin = spin + 1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    if (double(ts.tv_sec) + double(ts.tv_nsec) / 1e9 >= cend) break;
  }
  // 3. IO with O_DIRECT: write IO_MB, fsync, read them back
  std::string path = std::string(dir) + "/accuracy.dat";
  int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_DIRECT, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    return 1;
  }
  unlink(path.c_str());
  const size_t chunk = 1 << 20;
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, chunk) != 0) return 1;
  std::memset(buf, 0xab, chunk);
  long long written = 0, readb = 0;
  for (long i = 0; i < io_mb; i++) {
    ssize_t w = pwrite(fd, buf, chunk, off_t(i) * off_t(chunk));
    if (w > 0) written += w;
  }
  fsync(fd);
  for (long i = 0; i < io_mb; i++) {
    ssize_t r = pread(fd, buf, chunk, off_t(i) * off_t(chunk));
    if (r > 0) readb += r;
  }
  close(fd);
  // 4. RSS
  size_t rss = size_t(rss_mb) << 20;
  char* m = static_cast<char*>(mmap(nullptr, rss, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (m == MAP_FAILED) return 1;
  for (size_t i = 0; i < rss; i += 4096) m[i] = 1;
  std::printf("{\"pid\":%d,\"ready\":true}\n", getpid());
  std::fflush(stdout);
  char line[16];
  if (!std::fgets(line, sizeof line, stdin)) return 1;
  std::string st = slurp("/proc/self/status");
  std::string ss = slurp("/proc/self/schedstat");
  std::string io = slurp("/proc/self/io");
  std::printf("{\"pid\":%d,\"nvcsw\":%lld,\"nivcsw\":%lld,\"cpu_ns\":%lld,\"rss_kb\":%lld,\"io_read_bytes\":%lld,"
              "\"io_write_bytes\":%lld,\"written\":%lld,\"read\":%lld}\n",
              getpid(), field(st, "voluntary_ctxt_switches:"), field(st, "nonvoluntary_ctxt_switches:"),
              std::atoll(ss.c_str()), field(st, "VmRSS:"), field(io, "\nread_bytes:"), field(io, "write_bytes:"),
              written, readb);
  std::fflush(stdout);
  _exit(0);
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_procs sleepers N | short N LIFE_US PIDFILE [MAX_ALIVE] | signals RATE SECONDS |\n"
               "       exits SECONDS [WORKERS] | accuracy DIR IO_MB RSS_MB ROUND_TRIPS CPU_MS\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string mode = argv[1];
  if (mode == "sleepers" && argc == 3) return sleepers(std::atoi(argv[2]));
  if (mode == "short" && (argc == 5 || argc == 6))
    return short_lived(std::atoi(argv[2]), std::atol(argv[3]), argv[4], argc == 6 ? std::atoi(argv[5]) : 8);
  if (mode == "signals" && argc == 4) return signals(std::atof(argv[2]), std::atof(argv[3]));
  if (mode == "exits" && (argc == 3 || argc == 4)) return exits(std::atof(argv[2]), argc == 4 ? std::atoi(argv[3]) : 2);
  if (mode == "accuracy" && argc == 7)
    return accuracy(argv[2], std::atol(argv[3]), std::atol(argv[4]), std::atol(argv[5]), std::atol(argv[6]));
  return usage();
}
