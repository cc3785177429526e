// The fault families. Each run_* starts its fault processes through the
// Supervisor, announces the ground truth, holds the fault, and returns the exit
// code; main() stops and reaps everything afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "faultgen/common.h"

namespace fg {

using std::chrono::nanoseconds;

// Whether this machine can produce a fault; `missing` says what is missing.
struct Availability {
  bool ok = true;
  std::string missing;
};

// cpu.cpp
struct CpuOptions {
  int threads = 1;
};
int run_cpu(Supervisor& sup, const CpuOptions& o);

struct StarveOptions {
  int hog_threads = 2;
  int victim_nice = 10;  // the hog is at nice -10; at 10 the victim waits ~23 times per 3 s, ~128 ms each
};
Availability starve_available();
int run_starve(Supervisor& sup, const StarveOptions& o);

// memory.cpp
struct LeakOptions {
  double rate_mb = 0;  // MiB per second
  double max_mb = 1024;
};
int run_leak(Supervisor& sup, const LeakOptions& o);

// io.cpp
struct IoOptions {
  double rate_mb = 0;  // MiB per second
  bool direct = false;
  bool read = false;
  std::string dir = ".";
  int size_mb = 256;
};
int run_io(Supervisor& sup, const IoOptions& o);

struct IoErrOptions {
  double rate = 10;  // failing reads per second
};
Availability ioerr_available();
int run_ioerr(Supervisor& sup, const IoErrOptions& o);

// proc.cpp
struct CrashOptions {
  int signo = 0;
  nanoseconds after{0};
  std::optional<int> loop;  // --loop N: N crashes, each by a new child
  nanoseconds every{0};     // with --loop: lifetime of each child after the first
};
int run_crash(Supervisor& sup, const CrashOptions& o);

struct HangOptions {
  nanoseconds dstate{0};
};
int run_hang(Supervisor& sup, const HangOptions& o);

struct ForkBombOptions {
  double rate = 0;  // forks per second
};
int run_forkbomb(Supervisor& sup, const ForkBombOptions& o);

// counter.cpp: not a fault by itself but a supervised service that checkpoints
// (application-assisted) and can crash, leak or spin on demand. Runs in
// faultgen's own process (no Supervisor): faultprobed is its supervisor.
struct CounterOptions {
  std::string dir;                           // "" = $FAULTPROBE_CHECKPOINT_DIR
  nanoseconds tick{std::chrono::milliseconds(10)};
  nanoseconds every{std::chrono::milliseconds(100)};  // checkpoint period
  size_t keep = 3;                           // checkpoints kept (the newest)
  std::optional<uint64_t> crash_at;          // SIGSEGV when the count reaches it (not after a restore)
  double leak_mb_per_s = 0;
  double leak_max_mb = 1024;
  bool hog = false;                          // one thread spinning
  std::string inject;                        // control file polled every tick ("" = DIR.inject)
};
int run_counter(const CounterOptions& o, std::optional<nanoseconds> duration);

}  // namespace fg
