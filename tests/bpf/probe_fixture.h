// Shared by the BPF tests: one probe per test binary, children the test
// controls, and polling with deadlines instead of sleeps.
#pragma once

#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <algorithm>
#include <thread>

#include "log.h"
#include "probe/delta.h"
#include "probe/probe.h"

namespace fp::test {

// The probe, loaded once for the whole binary. A BPF test must not skip when
// it cannot load: it fails, loudly, with the loader's reason.
Probe& probe();

// Looks up the live slot of `pid` in a fresh read.
std::optional<fp_proc> live_slot(uint32_t pid);

// The probe's nonzero drop counters and its hooks' skipped runs, for a
// failure message ("threads_full=2 hook_nested=0 ...").
std::string probe_health();

// Polls `pred` until it holds or `timeout` passes. Returns whether it held.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = std::chrono::milliseconds(5));

// Drains events into an accumulating batch (kept across calls) and returns it.
EventBatch& events();
void reset_events();

// The exit record of `pid` once it arrives (polls up to `timeout`).
std::optional<ExitRecord> wait_exit(uint32_t pid, std::chrono::milliseconds timeout);

// Forks a child that runs `body` and _exit()s with its return value. The child
// starts paused until release() so that the test can take a baseline first.
// The latest copy Probe::refresh() returned of each slot since this was
// made: what the daemon's engine last saw of it (a free slot: tgid 0).
struct SlotCopies {
  std::map<uint32_t, fp_proc> by_slot;
  // One refresh; returns its changed slots.
  const std::vector<uint32_t>& refresh(Probe& p) {
    const auto& slots = p.refresh();
    const auto& copies = p.changed_copies();
    for (size_t i = 0; i < slots.size(); i++) by_slot[slots[i]] = copies[i];
    return slots;
  }
  fp_proc operator[](uint32_t slot) const {
    auto it = by_slot.find(slot);
    return it == by_slot.end() ? fp_proc{} : it->second;
  }
};

class Child {
 public:
  explicit Child(std::function<int()> body);
  ~Child();
  pid_t pid() const { return pid_; }
  void release();                 // let the body run
  int wait();                     // waitpid, returns raw status
  void kill(int sig);
 private:
  pid_t pid_ = -1;
  int go_fd_ = -1;
  bool reaped_ = false;
};

// A cgroup of our own for one controller, removed (when empty) at the end:
// on the unified hierarchy where it offers the controller, else on v1
// (/sys/fs/cgroup/<controller>). ok() says whether it exists.
class TestCgroup {
 public:
  TestCgroup(const std::string& controller, const std::string& name);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;
  bool ok() const { return ok_; }
  bool v2() const { return v2_; }
  std::string where() const;
  // Writes a control file (v2's name, or v1's): false if it failed.
  bool set(const std::string& v2_file, const std::string& v1_file, const std::string& value);
  bool add(pid_t pid);

 private:
  bool write(const std::string& file, const std::string& value);
  std::string dir_, controller_;
  bool ok_ = false, v2_ = false;
};

// A directory on a real block device for the IO tests: FP_TEST_IO_DIR when
// set, else the first of the working directory (the build tree), /var/tmp
// and /root that is on one (tmpfs and overlay cannot take O_DIRECT to a disk).
std::string io_dir();
bool on_block_device(const std::string& dir);

// Spins on the CPU for `d` of wall time.
void spin_for(std::chrono::nanoseconds d);
// Spins until the calling thread has used `d` of CPU time, however busy the
// machine is: the ground truth of the CPU tests does not depend on load.
void spin_cpu_for(std::chrono::nanoseconds d);
// The state letter of /proc/PID/stat ('R', 'S', 'D', ...); 0 when it is gone.
char proc_state(uint32_t pid);
// Pins the calling thread to `cpu`.
void pin_to_cpu(int cpu);

}  // namespace fp::test
