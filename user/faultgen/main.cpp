// faultgen: starts a fault of one class in real processes and prints the
// ground truth (class, culprit pid, victims, injection time) as its first
// stdout line, for end-to-end tests, the fault campaign and demos.
//
// Exit codes: 0 done (also when stopped by SIGTERM/SIGINT), 1 failed,
// 2 bad usage, 3 this machine cannot produce the fault.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "faultgen/faults.h"
#include "faultgen/logic.h"
#include "util/duration.h"

namespace {

using fg::nanoseconds;

// A DUR option: anything fp::parse_duration accepts; `positive`: not zero.
CLI::Validator duration_check(bool positive) {
  return CLI::Validator(
      [positive](std::string& text) -> std::string {
        auto d = fp::parse_duration(text);
        if (!d.ok()) return d.error().message;
        if (positive && d->count() == 0) return "must be longer than 0s";
        return "";
      },
      "");
}

nanoseconds to_duration(const std::string& text) {
  auto d = fp::parse_duration(text);
  return d.ok() ? d.value() : nanoseconds(0);  // validated by duration_check
}

std::string crash_signal_list() {
  std::string s;
  for (const auto& sig : fg::kCrashSignals) {
    if (!s.empty()) s += ", ";
    s += sig.name;
  }
  return s;
}

int list() {
  struct Row {
    const char* name;
    const char* fault;
    fg::Availability available;
  };
  const Row rows[] = {
      {"cpu", "cpu_runaway", {}},
      {"leak", "memory_leak", {}},
      {"io", "io_storm", {}},
      {"crash", "crash, crash_loop", {}},
      {"hang", "hang", {}},
      {"forkbomb", "fork_bomb", {}},
      {"starve", "runq_starvation", fg::starve_available()},
      {"ioerr", "io_error", fg::ioerr_available()},
      {"counter", "crash, memory_leak, cpu_runaway (as a service)", {}},
  };
  for (const Row& r : rows) {
    std::string state = r.available.ok ? "available" : "unavailable: " + r.available.missing;
    std::printf("%-9s %-18s %s\n", r.name, r.fault, state.c_str());
  }
  return fg::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultgen: start a fault in real processes and print its ground truth.\n"
               "First stdout line: {\"fault\":..,\"culprit\":pid,\"victims\":[..],\"injected_mono_ns\":..,"
               "\"injected_real_ns\":..}.\n"
               "The fault lasts --duration (default: until SIGTERM/SIGINT); then everything faultgen\n"
               "started is killed and reaped. If a fault process ends early (killed from outside),\n"
               "faultgen prints {\"exited\":pid,..} and stops. Exit: 0 done, 1 failed, 2 usage,\n"
               "3 not producible on this machine.",
               "faultgen"};
  app.require_subcommand(1);

  std::string duration_text;
  auto add_duration = [&](CLI::App* sub) {
    sub->add_option("--duration", duration_text, "how long the fault lasts (default: until SIGTERM/SIGINT)")
        ->type_name("DUR")
        ->check(duration_check(true));
  };

  fg::CpuOptions cpu_o;
  CLI::App* cpu = app.add_subcommand("cpu", "cpu_runaway: a process spinning N threads at 100%");
  cpu->add_option("--threads", cpu_o.threads, "spinning threads")->check(CLI::Range(1, 1024))->capture_default_str();
  add_duration(cpu);

  fg::LeakOptions leak_o;
  CLI::App* leak = app.add_subcommand("leak", "memory_leak: a process whose RSS grows at a rate, then holds");
  leak->add_option("--rate", leak_o.rate_mb, "MiB per second (touched in ~100 ms steps)")
      ->required()
      ->check(CLI::PositiveNumber);
  leak->add_option("--max", leak_o.max_mb, "stop growing at this many MiB and hold")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_duration(leak);

  fg::IoOptions io_o;
  CLI::App* io = app.add_subcommand("io", "io_storm: a process writing (or reading) a file at a rate");
  io->add_option("--rate", io_o.rate_mb, "MiB per second")->required()->check(CLI::PositiveNumber);
  io->add_flag("--direct", io_o.direct, "O_DIRECT (not on tmpfs)");
  io->add_flag("--read", io_o.read, "read instead of write (the file is filled first)");
  io->add_option("--dir", io_o.dir, "where the (unnamed) file lives")->capture_default_str();
  io->add_option("--size", io_o.size_mb, "file size in MiB; the offset wraps there")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  add_duration(io);

  fg::CrashOptions crash_o;
  std::string signal_text, after_text, every_text;
  CLI::App* crash = app.add_subcommand(
      "crash",
      "crash: a process that dies by a fatal signal after a while (crash_loop with --loop); each crash adds "
      "a line {\"crash\":pid,\"mono_ns\":..,\"real_ns\":..,\"signal\":n}, timed just before the fatal "
      "instruction");
  crash->add_option("--signal", signal_text, "one of " + crash_signal_list())
      ->required()
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return fg::crash_signal(s) ? "" : "unknown signal \"" + s + "\"; expected one of " + crash_signal_list();
          },
          ""))
      ->type_name("NAME");
  crash->add_option("--after", after_text, "how long the process runs before it crashes")
      ->required()
      ->type_name("DUR")
        ->check(duration_check(false));
  CLI::Option* loop_opt = crash->add_option("--loop", crash_o.loop,
                                            "crash N times, a new process each time; ends after the last "
                                            "crash unless --duration")
                              ->check(CLI::Range(1, 100000));
  crash->add_option("--every", every_text,
                    "with --loop: each new process is started right after the previous crash and crashes "
                    "after this long (default: --after)")
      ->type_name("DUR")
        ->check(duration_check(true))
      ->needs(loop_opt);
  add_duration(crash);

  fg::HangOptions hang_o;
  std::string dstate_text;
  CLI::App* hang = app.add_subcommand(
      "hang", "hang: a process in uninterruptible sleep (D) for DUR, repeated while the fault lasts");
  hang->add_option("--dstate", dstate_text, "how long each D-state sleep lasts")
      ->required()
      ->type_name("DUR")
        ->check(duration_check(true));
  add_duration(hang);

  fg::ForkBombOptions fork_o;
  CLI::App* forkbomb = app.add_subcommand(
      "forkbomb", "fork_bomb: a process forking short-lived children (at most 64 alive at once)");
  forkbomb->add_option("--rate", fork_o.rate, "forks per second")->required()->check(CLI::Range(0.001, 100000.0));
  add_duration(forkbomb);

  fg::StarveOptions starve_o;
  CLI::App* starve = app.add_subcommand(
      "starve", "runq_starvation: a hog (nice -10) and a victim (nice 19, 1 ms work / 1 ms sleep) on CPU 0");
  starve->add_option("--hog-threads", starve_o.hog_threads, "spinning threads in the hog")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  starve->add_option("--victim-nice", starve_o.victim_nice,
                     "the victim's nice; at 19 it gets ~1 run per second against the hog, lower values "
                     "give more, shorter waits")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  add_duration(starve);

  fg::IoErrOptions ioerr_o;
  CLI::App* ioerr = app.add_subcommand("ioerr", "io_error: a process reading a device-mapper error device");
  ioerr->add_option("--rate", ioerr_o.rate, "failing reads per second")
      ->check(CLI::Range(0.001, 100000.0))
      ->capture_default_str();
  add_duration(ioerr);

  fg::CounterOptions counter_o;
  std::string tick_text = "10ms", ckpt_every_text = "100ms";
  CLI::App* counter = app.add_subcommand(
      "counter",
      "a service that counts and writes application-assisted checkpoints (DIR/ckpt-<count>, write + rename, "
      "newest --keep kept) and resumes from $FAULTPROBE_RESTORE_FROM; runs in faultgen's own process, for "
      "faultprobed to supervise. Stdout: the ground-truth line (with \"count\" and \"restored\"), then "
      "{\"count\":N,..} each second; {\"injected\":TEXT,..} when it turns faulty; {\"crash\":pid,..} just "
      "before a crash");
  counter->add_option("--dir", counter_o.dir, "checkpoint directory (default: $FAULTPROBE_CHECKPOINT_DIR)");
  counter->add_option("--tick", tick_text, "count up this often")
      ->type_name("DUR")
      ->check(duration_check(true))
      ->capture_default_str();
  counter->add_option("--every", ckpt_every_text, "write a checkpoint this often")
      ->type_name("DUR")
      ->check(duration_check(true))
      ->capture_default_str();
  counter->add_option("--keep", counter_o.keep, "checkpoints kept (the newest)")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  counter->add_option("--crash-at", counter_o.crash_at,
                      "SIGSEGV when the count reaches N, unless started from a checkpoint")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 62));
  counter->add_option("--leak-mb-per-s", counter_o.leak_mb_per_s, "leak touched memory at this rate (MiB/s)")
      ->check(CLI::PositiveNumber);
  counter->add_option("--leak-max-mb", counter_o.leak_max_mb, "stop leaking at this many MiB")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  counter->add_flag("--hog", counter_o.hog, "also spin one CPU");
  counter->add_option("--inject", counter_o.inject,
                      "control file (default DIR.inject): when it appears, the counter reads and removes it and "
                      "turns faulty: crash[:AFTER] | hang | leak:MIB_PER_S | hog:DUR | forkbomb:PER_S; a leading "
                      "'+' makes the fault part of the state: every later checkpoint carries it and a counter "
                      "restored from one turns faulty again");
  add_duration(counter);

  CLI::App* list_cmd = app.add_subcommand("list", "the subcommands and whether each works on this machine");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return fg::kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return fg::kExitOk;
  } catch (const CLI::ParseError& e) {
    std::cerr << "faultgen: " << e.what() << "\n\n" << app.help();
    return fg::kExitUsage;
  }

  if (list_cmd->parsed()) return list();

  CLI::App* sub = app.get_subcommands().at(0);
  std::optional<nanoseconds> duration;
  if (!duration_text.empty()) duration = to_duration(duration_text);
  if (crash->parsed()) {
    crash_o.signo = *fg::crash_signal(signal_text);
    crash_o.after = to_duration(after_text);
    crash_o.every = every_text.empty() ? crash_o.after : to_duration(every_text);
  }
  if (hang->parsed()) hang_o.dstate = to_duration(dstate_text);
  if (sub == counter) {
    // Before any fg::Supervisor: the counter is the service itself and keeps
    // ordinary signal handling.
    counter_o.tick = to_duration(tick_text);
    counter_o.every = to_duration(ckpt_every_text);
    return fg::run_counter(counter_o, duration);
  }

  fg::Supervisor sup("faultgen " + sub->get_name(), duration);
  int rc = fg::kExitFailed;
  if (sub == cpu) rc = fg::run_cpu(sup, cpu_o);
  if (sub == leak) rc = fg::run_leak(sup, leak_o);
  if (sub == io) rc = fg::run_io(sup, io_o);
  if (sub == crash) rc = fg::run_crash(sup, crash_o);
  if (sub == hang) rc = fg::run_hang(sup, hang_o);
  if (sub == forkbomb) rc = fg::run_forkbomb(sup, fork_o);
  if (sub == starve) rc = fg::run_starve(sup, starve_o);
  if (sub == ioerr) rc = fg::run_ioerr(sup, ioerr_o);
  sup.stop_all();
  return rc;
}
