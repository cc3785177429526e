// faultprobed: the service. For now it runs the probe and samples it at the
// configured rate, logging probe health; detection arrives with the rule engine.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "log.h"
#include "probe/probe.h"
#include "util/duration.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultprobed: kernel fault monitoring service", "faultprobed"};
  int verbosity = 0;
  bool foreground = false;
  std::string interval = "100ms";
  app.add_flag("-v,--verbose", verbosity, "more logging");
  app.add_flag("--foreground", foreground, "stay in the foreground (the only mode for now)");
  app.add_option("--sample-interval", interval, "how often to read the probe")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "faultprobed: %s\n\n%s", e.what(), app.help().c_str());
    return 2;
  }
  auto every = fp::parse_duration(interval);
  if (!every || every.value().count() <= 0) {
    std::fprintf(stderr, "faultprobed: %s\n", every ? "the sample interval must be > 0"
                                                    : every.error().message.c_str());
    return 2;
  }
  fp::init_logging(verbosity);

  auto probe = fp::Probe::start();
  if (!probe) {
    std::fprintf(stderr, "faultprobed: %s\n", probe.error().message.c_str());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  spdlog::info("probe attached; sampling every {}", fp::format_duration(every.value()));
  fp::EventBatch events;
  const auto period = std::chrono::duration_cast<std::chrono::milliseconds>(every.value());
  uint64_t next = fp::monotonic_now_ns();
  uint64_t last_report = next;
  uint64_t exits = 0;
  while (!g_stop) {
    next += uint64_t(every.value().count());
    uint64_t now = fp::monotonic_now_ns();
    auto wait = next > now ? std::chrono::milliseconds((next - now) / 1'000'000) : std::chrono::milliseconds(0);
    (*probe)->poll(events, std::min(wait, period));
    (*probe)->refresh();
    exits += events.exits.size();
    events.clear();
    if (fp::monotonic_now_ns() - last_report >= 10'000'000'000ull) {
      uint64_t drops = 0;
      for (auto d : (*probe)->drops()) drops += d;
      size_t live = 0;
      for (const auto& p : (*probe)->slots()) live += p.tgid != 0;
      spdlog::info("{} processes tracked, {} exits, {} drops", live, exits, drops);
      last_report = fp::monotonic_now_ns();
    }
  }
  spdlog::info("stopping");
  return 0;
}
