// counter: an application-assisted checkpointing service, for the supervisor's
// restart and restore tests and the campaign. Unlike the other modes it is the
// fault process itself (no child): faultprobed supervises it as a [[service]],
// so its own pid is the one that crashes, leaks or spins.
//
// It counts up every --tick and writes its count to DIR/ckpt-<count> every
// --every (NAME.tmp, fsync, rename, fsync of the directory: a reader never sees
// a partial checkpoint), keeping the newest --keep (3). FAULTPROBE_RESTORE_FROM
// resumes from a checkpoint.
//
// --inject FILE (default DIR.inject) lets a campaign turn a running, healthy
// counter faulty from outside: when the file appears the counter reads and
// removes it and crashes (at once, or after a delay), hangs (vfork:
// uninterruptible sleep), leaks, spins for a while, or forks at a rate, as the
// file says, and prints {"injected": TEXT, "pid", "mono_ns", "real_ns"} (the
// ground truth of when). An injection written with a leading '+' becomes part
// of the counter's state, as a poisonous request becomes part of a real
// service's: every checkpoint written from then on carries it ("fault TEXT" on
// its second line), and a counter restored from such a checkpoint turns faulty
// again the same way. That is the checkpoint taken while the fault was already
// developing, which a restore must learn to fall back from.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "faultgen/faults.h"
#include "faultgen/logic.h"
#include "util/duration.h"

namespace fg {

namespace {

constexpr const char* kPrefix = "ckpt-";
constexpr const char* kFaultLine = "fault ";  // a checkpoint's second line: the fault in its state

volatile sig_atomic_t g_stop = 0;
std::atomic<int64_t> g_hog_until{0};  // an injected hog spins until then
void on_stop(int) { g_stop = 1; }

// Zero-padded so name order is count order (mtimes can tie).
std::string ckpt_name(uint64_t count) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%s%010llu", kPrefix, static_cast<unsigned long long>(count));
  return buf;
}

std::optional<uint64_t> parse_count(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str()) return std::nullopt;
  while (*end == '\n' || *end == ' ') ++end;
  if (*end != '\0') return std::nullopt;
  return v;
}

int fail(const std::string& what) {
  std::cerr << "faultgen counter: " << what << "\n";
  return kExitFailed;
}

// A checkpoint's content: the count, and the fault its state carries ("" if none).
struct Saved {
  uint64_t count = 0;
  std::string fault;
};

std::optional<Saved> parse_checkpoint(const std::string& text) {
  const auto nl = text.find('\n');
  auto n = parse_count(text.substr(0, nl));
  if (!n) return std::nullopt;
  Saved s{*n, ""};
  if (nl == std::string::npos) return s;
  std::string rest = text.substr(nl + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.pop_back();
  if (rest.empty()) return s;
  if (rest.rfind(kFaultLine, 0) != 0 || rest.find('\n') != std::string::npos) return std::nullopt;
  s.fault = rest.substr(std::strlen(kFaultLine));
  return s;
}

class Checkpointer {
 public:
  Checkpointer(std::string dir, size_t keep) : dir_(std::move(dir)), keep_(std::max<size_t>(keep, 1)) {
    // Ours from an earlier run take part in the rotation, oldest first by
    // mtime (not by count: a run that was not restored counts from 0 again).
    std::error_code ec;
    std::vector<std::pair<std::filesystem::file_time_type, std::string>> found;
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind(kPrefix, 0) != 0 || !parse_count(name.substr(std::strlen(kPrefix)))) continue;
      std::error_code mec;
      auto mtime = std::filesystem::last_write_time(it->path(), mec);
      if (!mec) found.emplace_back(mtime, it->path().string());
    }
    std::sort(found.begin(), found.end());
    for (auto& f : found) written_.push_back(f.second);
  }

  // Returns false (and says why on stderr) when the checkpoint could not be written.
  bool write(uint64_t count, const std::string& fault) {
    const std::string final_path = dir_ + "/" + ckpt_name(count);
    const std::string tmp = final_path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return report("open " + tmp);
    std::string text = std::to_string(count) + "\n";
    if (!fault.empty()) text += kFaultLine + fault + "\n";
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
    int err = errno;
    close(fd);
    if (!ok) {
      unlink(tmp.c_str());
      errno = err;
      return report("write " + tmp);
    }
    if (rename(tmp.c_str(), final_path.c_str()) != 0) return report("rename " + tmp);
    // The rename itself must survive a crash of the machine, not only ours.
    if (int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    std::erase(written_, final_path);  // rewritten (same count again): now the newest
    written_.push_back(final_path);
    while (written_.size() > keep_) {
      unlink(written_.front().c_str());
      written_.pop_front();
    }
    return true;
  }

 private:
  bool report(const std::string& what) {
    std::cerr << "faultgen counter: " << what << ": " << std::strerror(errno) << "\n";
    return false;
  }
  std::string dir_;
  size_t keep_;
  std::deque<std::string> written_;
};

// Touched memory at a steady rate, up to a cap.
class Leaker {
 public:
  Leaker(double mb_per_s, double max_mb) : rate_(mb_per_s * static_cast<double>(kMiB)) {
    if (rate_ <= 0) return;
    page_ = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    max_ = static_cast<uint64_t>(max_mb * static_cast<double>(kMiB));
    void* mem = mmap(nullptr, max_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
      std::cerr << "faultgen counter: mmap " << max_ << " bytes: " << std::strerror(errno) << "\n";
      rate_ = 0;
      return;
    }
    madvise(mem, max_, MADV_NOHUGEPAGE);  // RSS grows smoothly, not in 2 MiB jumps
    base_ = static_cast<unsigned char*>(mem);
    start_ = mono_ns();
  }
  void step() {
    if (rate_ <= 0) return;
    uint64_t due = due_bytes(rate_, mono_ns() - start_, page_, max_);
    if (due > touched_) {
      std::memset(base_ + touched_, 0xa5, due - touched_);
      touched_ = due;
    }
  }

 private:
  double rate_;
  uint64_t page_ = 4096, max_ = 0, touched_ = 0;
  unsigned char* base_ = nullptr;
  int64_t start_ = 0;
};

// Uninterruptible (killable) sleep until killed: vfork() keeps the parent in
// D state while the child sleeps; the child goes when the parent does.
__attribute__((noinline)) void hang_forever(pid_t self) {
  for (;;) {
    pid_t pid = vfork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != self) _exit(1);
      const timespec ts{3600, 0};
      while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr) == EINTR) {
      }
      _exit(0);
    }
    if (pid < 0) return;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

// Forks short-lived children (they die with us) at `rate` per second.
void fork_at(double rate) {
  std::thread([rate] {
    const int64_t period = std::max<int64_t>(1, static_cast<int64_t>(1e9 / rate));
    int64_t next = mono_ns();
    for (;;) {
      pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        const timespec ts{0, 200'000'000};
        nanosleep(&ts, nullptr);
        _exit(0);
      }
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
      next += period;
      sleep_until(next);
    }
  }).detach();
}

[[noreturn]] void crash_now(uint64_t count);

// The control file: what to turn into, if it appeared.
struct Injection {
  std::string what;  // "crash", "hang", "leak", "hog", "forkbomb"
  std::string arg;
  bool sticky = false;  // '+': part of the state, carried by every later checkpoint
  std::string text() const { return arg.empty() ? what : what + ":" + arg; }
};

Injection parse_injection(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  Injection i;
  if (!text.empty() && text[0] == '+') {
    i.sticky = true;
    text.erase(0, 1);
  }
  auto colon = text.find(':');
  i.what = text.substr(0, colon);
  i.arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  return i;
}

// The ground truth of an injection: what, into whom, when.
void announce(const Injection& i, bool from_checkpoint) {
  std::cerr << "faultgen counter: injected " << (i.sticky ? "+" : "") << i.text()
            << (from_checkpoint ? " (carried by the checkpoint)" : "") << std::endl;
  emit_line("{\"injected\":\"" + std::string(i.sticky ? "+" : "") + i.text() + "\",\"pid\":" +
            std::to_string(getpid()) + ",\"from_checkpoint\":" + (from_checkpoint ? "true" : "false") +
            ",\"mono_ns\":" + std::to_string(mono_ns()) + ",\"real_ns\":" + std::to_string(real_ns()) + "}");
}

std::optional<Injection> take_injection(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  unlink(path.c_str());
  Injection i = parse_injection(text);
  announce(i, false);
  return i;
}

[[noreturn]] void crash_now(uint64_t count) {
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  emit_line("{\"crash\":" + std::to_string(getpid()) + ",\"mono_ns\":" + std::to_string(mono_ns()) +
            ",\"real_ns\":" + std::to_string(real_ns()) + ",\"signal\":" + std::to_string(SIGSEGV) +
            ",\"count\":" + std::to_string(count) + "}");
  signal(SIGSEGV, SIG_DFL);  // a sanitizer build would catch it otherwise
  int* volatile null = nullptr;
  *null = 42;
  raise(SIGSEGV);
  _exit(1);
}

}  // namespace

int run_counter(const CounterOptions& o, std::optional<nanoseconds> duration) {
  std::string dir = o.dir;
  if (dir.empty()) {
    const char* env = std::getenv("FAULTPROBE_CHECKPOINT_DIR");
    if (env == nullptr || *env == '\0') {
      std::cerr << "faultgen counter: give --dir or set FAULTPROBE_CHECKPOINT_DIR\n";
      return kExitUsage;
    }
    dir = env;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir + ": " + ec.message());

  uint64_t count = 0;
  bool restored = false;
  std::optional<Injection> carried;  // the fault the checkpoint's state carries
  if (const char* from = std::getenv("FAULTPROBE_RESTORE_FROM"); from != nullptr && *from != '\0') {
    std::ifstream in(from);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto saved = in ? parse_checkpoint(text) : std::nullopt;
    if (!saved) return fail(std::string("cannot restore from ") + from + ": not a counter checkpoint");
    count = saved->count;
    restored = true;
    std::cerr << "restored from " << from << " at " << count << std::endl;
    if (!saved->fault.empty()) carried = parse_injection("+" + saved->fault);
  }

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &sa, nullptr);

  Checkpointer ckpt(dir, o.keep);
  std::optional<Leaker> leak;
  if (o.leak_mb_per_s > 0) leak.emplace(o.leak_mb_per_s, o.leak_max_mb);
  if (o.hog) std::thread(spin_forever).detach();
  const std::string inject = o.inject.empty() ? dir + ".inject" : o.inject;

  const char* fault = o.crash_at ? "crash" : o.leak_mb_per_s > 0 ? "memory_leak" : o.hog ? "cpu_runaway" : "none";
  std::string truth = truth_line(fault, getpid(), {}, mono_ns(), real_ns());
  truth.pop_back();  // the closing brace: the counter adds where it starts from
  emit_line(truth + ",\"count\":" + std::to_string(count) + ",\"restored\":" + (restored ? "true" : "false") + "}");

  const int64_t t0 = mono_ns();
  const int64_t tick = std::max<int64_t>(o.tick.count(), 1'000'000);
  const int64_t every = std::max<int64_t>(o.every.count(), tick);
  const int64_t deadline = duration ? t0 + duration->count() : INT64_MAX;  // INT64_MAX: until a stop signal
  int64_t next_tick = t0 + tick, next_ckpt = t0 + every, next_print = t0 + 1'000'000'000;
  std::string poison;               // the sticky fault every checkpoint from now on carries
  int64_t crash_due = INT64_MAX;    // a delayed crash ("crash:DUR")
  auto turn_faulty = [&](const Injection& inj) {
    if (inj.sticky) poison = inj.text();
    if (inj.what == "crash") {
      auto d = inj.arg.empty() ? fp::Result<nanoseconds>(nanoseconds(0)) : fp::parse_duration(inj.arg);
      crash_due = mono_ns() + (d ? d->count() : 0);
    } else if (inj.what == "hang") {
      ckpt.write(count, poison);
      hang_forever(getpid());
    } else if (inj.what == "leak") {
      double rate = inj.arg.empty() ? 40 : std::atof(inj.arg.c_str());
      leak.emplace(rate, std::max(o.leak_max_mb, 4096.0));
    } else if (inj.what == "hog") {
      auto d = inj.arg.empty() ? fp::Result<nanoseconds>(nanoseconds(std::chrono::seconds(20)))
                               : fp::parse_duration(inj.arg);
      g_hog_until = mono_ns() + (d ? d->count() : 20'000'000'000);
      std::thread([] {
        // spin: nothing but the clock read, which a hog of a real service would not need either
        while (mono_ns() < g_hog_until.load()) {
        }
      }).detach();
    } else if (inj.what == "forkbomb") {
      fork_at(inj.arg.empty() ? 300 : std::max(1.0, std::atof(inj.arg.c_str())));
    } else {
      std::cerr << "faultgen counter: unknown injection " << inj.what << std::endl;
    }
  };
  if (carried) {
    announce(*carried, true);
    turn_faulty(*carried);
  }
  while (g_stop == 0) {
    sleep_until(next_tick);
    if (g_stop != 0) break;
    const int64_t now = mono_ns();
    next_tick += tick;
    ++count;
    if (o.crash_at && !restored && count >= *o.crash_at) crash_now(count);
    if (now >= crash_due) crash_now(count);
    if (auto inj = take_injection(inject)) turn_faulty(*inj);
    if (leak) leak->step();
    if (now >= next_ckpt) {
      ckpt.write(count, poison);
      next_ckpt += every;
    }
    if (now >= next_print) {
      emit_line("{\"count\":" + std::to_string(count) + ",\"mono_ns\":" + std::to_string(now) + "}");
      next_print += 1'000'000'000;
    }
    if (now >= deadline) break;
  }
  // Stopped on purpose: the state so far is worth keeping.
  ckpt.write(count, poison);
  return kExitOk;
}

}  // namespace fg
