// What the probe's sched_switch program costs per switch under a load, with
// run-queue blame on or off (bpf/runq_blame.bpf.h), from the kernel's own
// accounting (kernel.bpf_stats_enabled = 1 while it runs, restored after;
// the accounting itself adds ~20-40 ns per run to both).
// Usage: bench_switch_cost on|off COMMAND [ARGS...]
//   e.g. bench_switch_cost off stress-ng --switch 2 -t 10
// Last line: bench switch_cost: runq_blame=on|off runs=N ns_per_switch=X
#include <bpf/bpf.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "log.h"
#include "probe/probe.h"

namespace {

// run_cnt and run_time_ns of this process's programs named `name`.
std::pair<uint64_t, uint64_t> prog_stats(const char* name) {
  uint64_t cnt = 0, ns = 0;
  DIR* d = opendir("/proc/self/fdinfo");
  if (d == nullptr) return {0, 0};
  while (dirent* e = readdir(d)) {
    std::ifstream in(std::string("/proc/self/fdinfo/") + e->d_name);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("prog_id:", 0) != 0) continue;
      int fd = bpf_prog_get_fd_by_id(uint32_t(std::stoul(line.substr(8))));
      if (fd < 0) continue;
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      // the kernel keeps BPF_OBJ_NAME_LEN - 1 = 15 characters of a name
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
          std::string(info.name, strnlen(info.name, sizeof(info.name))) == std::string(name).substr(0, 15)) {
        cnt += info.run_cnt;
        ns += info.run_time_ns;
      }
      close(fd);
    }
  }
  closedir(d);
  return {cnt, ns};
}

std::string read_file(const char* path) {
  std::string s;
  std::ifstream(path) >> s;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[1], "on") != 0 && std::strcmp(argv[1], "off") != 0)) {
    std::fprintf(stderr, "usage: bench_switch_cost on|off COMMAND [ARGS...]\n");
    return 2;
  }
  fp::init_logging(0);
  fp::ProbeOptions opts;
  opts.runq_blame = std::strcmp(argv[1], "on") == 0;
  auto probe = fp::Probe::start(opts);
  if (!probe) {
    std::fprintf(stderr, "bench: %s\n", probe.error().message.c_str());
    return 1;
  }
  if (opts.runq_blame && (*probe)->runq_blame_fd() < 0) {
    std::fprintf(stderr, "bench: run-queue blame is unavailable: %s\n", (*probe)->runq_blame_reason().c_str());
    return 1;
  }
  const char* kStats = "/proc/sys/kernel/bpf_stats_enabled";
  const std::string old = read_file(kStats);
  std::ofstream(kStats) << "1";
  auto before = prog_stats("btf_sched_switch");
  pid_t pid = fork();
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    std::perror("exec");
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto after = prog_stats("btf_sched_switch");
  std::ofstream(kStats) << (old.empty() ? "0" : old);
  const uint64_t runs = after.first - before.first, ns = after.second - before.second;
  std::printf("bench switch_cost: runq_blame=%s runs=%llu ns_per_switch=%.1f\n", argv[1],
              static_cast<unsigned long long>(runs), runs ? double(ns) / double(runs) : 0.0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
