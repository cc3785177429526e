// faultprobe events [--follow] [--json] [--backlog N] [--socket PATH]: the
// daemon's recent fault / resolved / action / recovery records, and with
// --follow every new one until Ctrl-C (exit 0) or the daemon goes away (1).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/daemon_client.h"
#include "server/text.h"
#include "util/text.h"

namespace fp {
namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

// Without SA_RESTART, so that a signal cuts the wait for the next line short.
void install_stop_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int run_events(const EventsOptions& opts) {
  auto client = connect_daemon(opts.socket);
  if (!client) return 1;
  nlohmann::json req = {{"cmd", "events"}, {"backlog", opts.backlog}, {"follow", opts.follow}};
  auto reply = client->request(req, std::chrono::seconds(10));
  if (!reply) {
    std::fprintf(stderr, "faultprobe: %s\n", reply.error().message.c_str());
    return 1;
  }
  if (opts.follow) install_stop_handlers();
  for (;;) {
    if (g_stop) return 0;
    // Following: short waits so that a signal is noticed promptly. Otherwise
    // the daemon sends the backlog and hangs up; a long silence is a fault.
    auto line = client->next_line(opts.follow ? std::chrono::milliseconds(500) : std::chrono::seconds(10));
    if (!line) {
      if (!opts.follow) return 0;  // the end of the backlog
      if (g_stop) return 0;
      std::fprintf(stderr, "faultprobe: faultprobed closed the event stream (%s): it stopped, or this "
                           "client fell too far behind\n", line.error().message.c_str());
      return 1;
    }
    if (!line->has_value()) {
      if (opts.follow) continue;
      std::fprintf(stderr, "faultprobe: faultprobed stopped sending in the middle of the backlog\n");
      return 1;
    }
    const nlohmann::json& ev = **line;
    std::string text = opts.json ? safe_dump(ev) : event_to_text(ev, 0);
    text += '\n';
    if (std::fputs(text.c_str(), stdout) < 0) return 1;  // e.g. stdout closed
    std::fflush(stdout);
  }
}

}  // namespace fp
