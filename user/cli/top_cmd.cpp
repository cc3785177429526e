// `faultprobe top`: picks the source (daemon or local probe) and the face
// (ncurses on a terminal, plain frames otherwise).
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "cli/top_screen.h"
#include "cli/top_source.h"

namespace fp {
namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int) { g_stop = 1; }

}  // namespace

int run_top(const TopOptions& opts) {
  // SIGINT/SIGTERM end the loop so curses restores the terminal and the
  // local probe's thread is joined before the process exits.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  SourceError err{0, ""};
  auto src = open_top_source(opts, &err);
  if (!src) {
    std::fprintf(stderr, "faultprobe top: %s\n", err.message.c_str());
    return err.exit_code;
  }
  const bool batch = opts.batch || !isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO);
  return batch ? run_top_batch(*src, opts, g_stop) : run_top_screen(*src, opts, g_stop);
}

}  // namespace fp
