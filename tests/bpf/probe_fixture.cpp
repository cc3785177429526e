#include "probe_fixture.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "../time_scale.h"
#include "report/snapshot_report.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <ctime>
#include <cstdlib>

namespace fp::test {

Probe& probe() {
  static std::unique_ptr<Probe> p = [] {
    init_logging(0);
    auto r = Probe::start();
    if (!r) {
      std::fprintf(stderr, "BPF tests need the probe and could not load it: %s\n",
                   r.error().message.c_str());
      std::abort();  // fail, never skip
    }
    return std::move(r).value();
  }();
  return *p;
}

std::optional<fp_proc> live_slot(uint32_t pid) {
  Sample s = probe().read();
  std::optional<fp_proc> found;
  for (const auto& p : s.procs) {
    if (p.tgid != pid) continue;
    if (found) {  // two live slots for one pid: a slot leaked by an earlier process of that pid
      ADD_FAILURE() << "two live slots for pid " << pid << ": start_ns " << found->start_ns << " (gen "
                    << found->gen << ", cpu_ns " << found->cpu_ns << ") and " << p.start_ns << " (gen " << p.gen
                    << ", cpu_ns " << p.cpu_ns << ")";
      if (p.start_ns < found->start_ns) continue;  // the younger one is the live process
    }
    found = p;
  }
  return found;
}

std::string probe_health() {
  std::string out;
  DropCounts d = probe().drops();
  for (unsigned r = 0; r < d.size(); r++)
    if (d[r]) out += std::string(drop_reason_name(r)) + "=" + std::to_string(d[r]) + " ";
  return out.empty() ? "no drops" : "drops: " + out;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

EventBatch& events() {
  static EventBatch batch;
  probe().drain(batch);
  return batch;
}

void reset_events() {
  events();
  events().clear();
}

std::optional<ExitRecord> wait_exit(uint32_t pid, std::chrono::milliseconds timeout) {
  std::optional<ExitRecord> found;
  wait_until(
      [&] {
        for (const auto& e : events().exits)
          if (e.final.tgid == pid) {
            found = e;
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

Child::Child(std::function<int()> body) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
  pid_ = fork();
  if (pid_ < 0) std::abort();
  if (pid_ == 0) {
    close(fds[1]);
    char c;
    if (read(fds[0], &c, 1) != 1) _exit(127);  // parent gone
    close(fds[0]);
    _exit(body());
  }
  close(fds[0]);
  go_fd_ = fds[1];
}

Child::~Child() {
  if (go_fd_ >= 0) close(go_fd_);
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Child::release() {
  char c = 'g';
  if (write(go_fd_, &c, 1) != 1) std::abort();
  close(go_fd_);
  go_fd_ = -1;
}

int Child::wait() {
  int status = 0;
  waitpid(pid_, &status, 0);
  reaped_ = true;
  return status;
}

void Child::kill(int sig) { ::kill(pid_, sig); }

bool on_block_device(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return false;
  struct statfs fs {};
  if (statfs(dir.c_str(), &fs) != 0) return false;
  return major(st.st_dev) != 0 && fs.f_type != TMPFS_MAGIC;
}

std::string io_dir() {
  const char* env = std::getenv("FP_TEST_IO_DIR");
  if (env && *env) return env;
  for (std::string d : {std::filesystem::current_path().string(), std::string("/var/tmp"), std::string("/root")})
    if (on_block_device(d)) return d;
  return std::filesystem::current_path().string();
}

namespace {
bool controllers_have(const std::string& root, const std::string& c) {
  std::ifstream in(root + "/cgroup.controllers");
  std::string tok;
  while (in >> tok)
    if (tok == c) return true;
  return false;
}
}  // namespace

TestCgroup::TestCgroup(const std::string& controller, const std::string& name) : controller_(controller) {
  namespace fs = std::filesystem;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers") && controllers_have("/sys/fs/cgroup", controller)) {
    dir_ = "/sys/fs/cgroup/" + name;
    v2_ = true;
  } else if (fs::exists("/sys/fs/cgroup/" + controller + "/cgroup.procs")) {
    dir_ = "/sys/fs/cgroup/" + controller + "/" + name;
  } else {
    return;
  }
  std::error_code ec;
  fs::create_directory(dir_, ec);
  ok_ = fs::exists(dir_ + "/cgroup.procs", ec);
}

TestCgroup::~TestCgroup() {
  if (!dir_.empty()) rmdir(dir_.c_str());
}

std::string TestCgroup::where() const { return dir_.empty() ? "(no " + controller_ + " controller)" : dir_; }

bool TestCgroup::set(const std::string& v2_file, const std::string& v1_file, const std::string& value) {
  return ok_ && write(v2_ ? v2_file : v1_file, value);
}

bool TestCgroup::add(pid_t pid) { return ok_ && write("cgroup.procs", std::to_string(pid)); }

bool TestCgroup::write(const std::string& file, const std::string& value) {
  std::ofstream out(dir_ + "/" + file);
  out << value;
  out.flush();
  return bool(out);
}

void spin_for(std::chrono::nanoseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  volatile uint64_t x = 0;
  while (std::chrono::steady_clock::now() < end) x = x + 1;
}

void spin_cpu_for(std::chrono::nanoseconds d) {
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  auto end = cpu_now() + d;
  volatile uint64_t x = 0;
  while (cpu_now() < end) x = x + 1;
}

char proc_state(uint32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  size_t close = line.rfind(')');  // the name may hold spaces and parentheses
  return close == std::string::npos || close + 2 >= line.size() ? 0 : line[close + 2];
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

}  // namespace fp::test
