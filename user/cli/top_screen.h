// The two faces of `faultprobe top`: the ncurses screen on a terminal, and
// plain-text frames (like `top -b`) when stdout is not one.
#pragma once

#include <csignal>

#include "cli/commands.h"
#include "cli/top_source.h"

namespace fp {

// Both return the exit code: 0 on q or after opts.count frames (or when
// `stop` is set by a signal), 1 when the source fails in batch mode.
int run_top_screen(TopSource& src, const TopOptions& opts, const volatile std::sig_atomic_t& stop);
int run_top_batch(TopSource& src, const TopOptions& opts, const volatile std::sig_atomic_t& stop);

}  // namespace fp
