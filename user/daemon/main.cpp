// faultprobed: the service. Samples the probe every sample_interval and runs
// the detectors; faults go to the log and, with --events-json, as JSON lines.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon/notify.h"
#include "daemon/service.h"
#include "log.h"
#include "util/guard.h"
#include "util/instance_lock.h"

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_stop(int) { g_stop = true; }
void on_hup(int) { g_reload = true; }

constexpr const char* kDefaultConfigPath = "/etc/faultprobe/faultprobe.toml";

// --detach-probe: unpin the probe a previous faultprobed left running. Refused
// while a daemon runs: it holds the links, so nothing would detach until it
// exits, and it would lose its probe under its feet.
int detach_probe(const fp::ServiceOptions& opts) {
  auto cfg = fp::load_service_config(opts);
  if (!cfg) {
    std::fprintf(stderr, "faultprobed: %s\n", cfg.error().message.c_str());
    return 2;
  }
  const std::string lock_path = cfg->daemon.lock_path, pin_dir = cfg->daemon.pin_dir;
  if (pin_dir.empty()) {
    std::printf("faultprobed: pinning is off (pin_dir = \"\"), nothing to detach\n");
    return 0;
  }
  auto lock = fp::InstanceLock::acquire(lock_path);
  if (!lock) {
    std::fprintf(stderr, "%s: stop it first\n", lock.error().message.c_str());
    return 1;
  }
  bool had = access(pin_dir.c_str(), F_OK) == 0;
  if (auto r = fp::Probe::remove_pins(pin_dir); !r) {
    std::fprintf(stderr, "faultprobed: %s\n", r.error().message.c_str());
    return 1;
  }
  std::printf(had ? "faultprobed: removed the probe pinned in %s; its programs are detached\n"
                  : "faultprobed: no probe pinned in %s, nothing to detach\n",
              pin_dir.c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  // One malloc arena for every thread: the daemon's threads (sampling, socket
  // server, metrics) rarely allocate at once, and each extra arena keeps its
  // own freed memory (the socket thread serializes a view of MBs at 10,000
  // processes) that the RSS budget then carries.
  mallopt(M_ARENA_MAX, 1);
  CLI::App app{"faultprobed: kernel fault monitoring service", "faultprobed"};
  int verbosity = 0;
  bool foreground = false;
  bool detach = false;
  std::string pin_dir, lock_path;
  fp::ServiceOptions opts;
  app.set_version_flag("--version", FAULTPROBE_VERSION);
  app.add_flag("-v,--verbose", verbosity, "more logging (repeat for libbpf debug)");
  app.add_flag("--foreground", foreground, "stay in the foreground (the only mode for now)");
  app.add_option("-c,--config", opts.config_path,
                 std::string("TOML config file (default: ") + kDefaultConfigPath + " if it exists, else built-in rules)");
  auto* pin_opt = app.add_option("--pin-dir", pin_dir,
                                 "bpffs directory the probe is pinned in, so a restart takes it over (\"\" = do "
                                 "not pin; default: [daemon] pin_dir, " + std::string(fp::kDefaultPinDir) + ")");
  auto* lock_opt = app.add_option("--lock-file", lock_path,
                                  "one daemon per host: this file is locked while it runs (default: [daemon] "
                                  "lock_path, " + std::string(fp::kDefaultLockPath) + ")");
  app.add_flag("--detach-probe", detach, "remove the pinned probe (detaches it) and exit");
  app.add_option("--events-json", opts.events_json, "write fault records as JSON lines to FILE (- for stdout)");
  app.add_option("--exits-json", opts.exits_json,
                 "append every exit the probe reports (final counters, clean exits too) as JSON lines to FILE "
                 "(for benchmarks)");
  app.add_flag("--dry-run", opts.dry_run, "never act, only report (actions arrive with policies)");
  app.add_flag("--raw-tp", opts.force_raw_tp, "attach with raw tracepoints even where tp_btf works");
  // For tests: BPF_PROG_TEST_RUN runs a raw_tp program, not a tp_btf one, so a
  // test can feed error_report_end a report without a kernel bug.
  app.add_option("--raw-tp-hook", opts.raw_tp_hooks,
                 "attach this hook (a tracepoint name, e.g. error_report_end) with a raw tracepoint even where "
                 "tp_btf works; repeatable (for tests)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "faultprobed: %s\n\n%s", e.what(), app.help().c_str());
    return 2;
  }
  fp::init_logging(verbosity);
  if (*pin_opt) opts.pin_dir = pin_dir;
  if (*lock_opt) opts.lock_path = lock_path;
  if (opts.config_path.empty() && access(kDefaultConfigPath, F_OK) == 0) opts.config_path = kDefaultConfigPath;
  if (detach) return detach_probe(opts);

  // Service::create takes the instance lock before it touches the probe: a
  // second daemon must not take the pins over.
  int code = 0;
  auto service = fp::Service::create(opts, &code);
  if (!service) {
    std::fprintf(stderr, "faultprobed: %s\n", service.error().message.c_str());
    fp::sd::status("failed: " + service.error().message);
    return code ? code : 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hup;
  sigaction(SIGHUP, &hup, nullptr);
  // run() catches per tick; this is the last line before std::terminate.
  int rc = 1;
  fp::guarded("faultprobed", [&] { rc = (*service)->run(g_stop, g_reload); });
  return rc;
}
