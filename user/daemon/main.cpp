// faultprobed: the service. Samples the probe every sample_interval and runs
// the detectors; faults go to the log and, with --events-json, as JSON lines.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon/service.h"
#include "log.h"

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
void on_stop(int) { g_stop = true; }
void on_hup(int) { g_reload = true; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultprobed: kernel fault monitoring service", "faultprobed"};
  int verbosity = 0;
  bool foreground = false;
  fp::ServiceOptions opts;
  app.add_flag("-v,--verbose", verbosity, "more logging (repeat for libbpf debug)");
  app.add_flag("--foreground", foreground, "stay in the foreground (the only mode for now)");
  app.add_option("-c,--config", opts.config_path, "TOML config file (default: built-in rules)");
  app.add_option("--events-json", opts.events_json, "write fault records as JSON lines to FILE (- for stdout)");
  app.add_flag("--dry-run", opts.dry_run, "never act, only report (actions arrive with policies)");
  app.add_flag("--raw-tp", opts.force_raw_tp, "attach with raw tracepoints even where tp_btf works");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "faultprobed: %s\n\n%s", e.what(), app.help().c_str());
    return 2;
  }
  fp::init_logging(verbosity);

  int code = 0;
  auto service = fp::Service::create(opts, &code);
  if (!service) {
    std::fprintf(stderr, "faultprobed: %s\n", service.error().message.c_str());
    return code ? code : 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hup;
  sigaction(SIGHUP, &hup, nullptr);
  return (*service)->run(g_stop, g_reload);
}
