// faultprobe: the command-line face of the probe.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "log.h"
#include "util/duration.h"

namespace {

// CLI11 validator for durations so that a bad one is a usage error.
struct DurationValidator : public CLI::Validator {
  DurationValidator() {
    name_ = "DURATION";
    func_ = [](std::string& s) -> std::string {
      auto d = fp::parse_duration(s);
      if (!d) return d.error().message;
      if (d.value().count() <= 0) return "the interval must be longer than 0";
      return {};
    };
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultprobe: per-process kernel fault counters from eBPF", "faultprobe"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FAULTPROBE_VERSION);
  int verbosity = 0;
  app.add_flag("-v,--verbose", verbosity, "more logging (repeat for libbpf debug)");

  fp::SnapshotOptions snap;
  std::string interval = "1s";
  auto* snapshot = app.add_subcommand("snapshot", "load the probe, wait, print per-process deltas");
  snapshot->add_option("-i,--interval", interval, "how long to watch (e.g. 500ms, 1s, 2m)")
      ->check(DurationValidator())
      ->capture_default_str();
  snapshot->add_flag("--json", snap.json, "one JSON document instead of a table");
  snapshot->add_option("-p,--pid", snap.pids, "only these processes (repeatable)")->expected(1, -1);
  snapshot->add_option("-n,--rows", snap.max_rows, "at most this many table rows (0: all)");
  snapshot->add_flag("--raw-tp", snap.force_raw_tp, "attach with raw tracepoints even where tp_btf works");

  fp::TopOptions top_opts;
  std::string top_interval = "1s";
  bool top_local = false, top_daemon = false;
  auto* top = app.add_subcommand("top", "live per-process view with open faults (daemon's, or the probe loaded here)");
  top->add_option("-d,--interval", top_interval, "refresh interval (e.g. 500ms, 1s, 2s)")
      ->check(DurationValidator())
      ->capture_default_str();
  auto* top_local_opt = top->add_flag("--local", top_local, "load the probe here even if a daemon runs");
  auto* top_daemon_opt = top->add_flag("--daemon", top_daemon, "only show the daemon's view (error if none answers)")
                             ->excludes(top_local_opt);
  top->add_option("--socket", top_opts.socket_path, "the daemon's socket (default /run/faultprobe/faultprobe.sock)");
  top->add_option("-c,--config", top_opts.config_path, "rules config for local mode (implies --local)")
      ->excludes(top_daemon_opt);
  top->add_flag("-b,--batch", top_opts.batch, "plain-text frames (the default when stdout is not a terminal)");
  top->add_option("-n,--count", top_opts.count, "exit after this many refreshes (0: until q)");
  top->add_option("--rows", top_opts.max_rows, "batch mode: at most this many rows per frame (0: all)");
  top->add_flag("--raw-tp", top_opts.force_raw_tp, "local mode: attach with raw tracepoints");
  top->add_flag("-i,--hide-idle", top_opts.hide_idle,
                "hide processes that did nothing in the interval (key I toggles)");
  top->add_flag("-g,--groups", top_opts.groups, "one row per systemd unit / cgroup, as systemd-cgtop (key C toggles)");

  std::string config_file;
  bool config_json = false, list_keys = false;
  auto* check = app.add_subcommand("check-config", "validate a faultprobed config file");
  auto* list_keys_opt =
      check->add_flag("--list-keys", list_keys, "print every config key the parser knows (SECTION.KEY) and exit");
  // A FILE or --list-keys, one of the two.
  check->add_option("file", config_file, "the TOML file")->excludes(list_keys_opt);
  check->add_flag("--json", config_json, "print the effective rules as JSON")->excludes(list_keys_opt);

  fp::StatusOptions status_opts;
  auto* status = app.add_subcommand("status", "ask the running faultprobed for its status");
  status->add_flag("--json", status_opts.json, "the status document as JSON");
  status->add_option("--socket", status_opts.socket, "the daemon's socket")->capture_default_str();

  fp::EventsOptions events_opts;
  auto* events = app.add_subcommand("events", "the running faultprobed's recent fault and action records");
  events->add_flag("-f,--follow", events_opts.follow, "keep printing new records until interrupted");
  events->add_flag("--json", events_opts.json, "one JSON object per line, as the daemon sends them");
  events->add_option("-n,--backlog", events_opts.backlog, "recent records to print first")->capture_default_str();
  events->add_option("--socket", events_opts.socket, "the daemon's socket")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "faultprobe: %s\n\n%s", e.what(), app.help().c_str());
    return 2;
  }
  fp::init_logging(verbosity);

  if (check->parsed()) {
    if (list_keys) return fp::run_list_config_keys();
    if (config_file.empty()) {
      std::fprintf(stderr, "faultprobe: check-config: a FILE (or --list-keys) is required\n\n%s",
                   check->help().c_str());
      return 2;
    }
    return fp::run_check_config(config_file, config_json);
  }
  if (top->parsed()) {
    top_opts.interval = fp::parse_duration(top_interval).value();
    top_opts.source = top_local    ? fp::TopOptions::Source::Local
                      : top_daemon ? fp::TopOptions::Source::Daemon
                                   : fp::TopOptions::Source::Auto;
    return fp::run_top(top_opts);
  }
  if (status->parsed()) return fp::run_status(status_opts);
  if (events->parsed()) return fp::run_events(events_opts);
  if (snapshot->parsed()) {
    snap.interval = fp::parse_duration(interval).value();
    return fp::run_snapshot(snap);
  }
  return 2;
}
