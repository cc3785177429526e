// faultgen's pure helpers: the JSON lines it prints, crash signal names, pacing.
// Header-only so unit tests can use them without the process machinery.
#pragma once

#include <string.h>  // sigabbrev_np
#include <sys/types.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fg {

// "SEGV" for SIGSEGV; "SIG<n>" for a number without a name.
inline std::string signal_name(int signo) {
  const char* abbrev = sigabbrev_np(signo);
  return abbrev != nullptr ? std::string(abbrev) : "SIG" + std::to_string(signo);
}

// The signals `faultgen crash` can die by, and how.
struct CrashSignal {
  std::string_view name;
  int signo;
  std::string_view how;
};
inline constexpr std::array<CrashSignal, 8> kCrashSignals{{
    {"SEGV", SIGSEGV, "write through a null pointer"},
    {"FPE", SIGFPE, "integer division by zero"},
    {"ABRT", SIGABRT, "abort()"},
    {"BUS", SIGBUS, "raise()"},
    {"ILL", SIGILL, "raise()"},
    {"TRAP", SIGTRAP, "raise()"},
    {"SYS", SIGSYS, "raise()"},
    {"KILL", SIGKILL, "raise()"},
}};

// "SEGV", "SIGSEGV", "segv" -> SIGSEGV; anything else -> nullopt.
inline std::optional<int> crash_signal(std::string_view text) {
  std::string up;
  for (char c : text) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string_view name = up;
  if (name.size() > 3 && name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (const CrashSignal& s : kCrashSignals) {
    if (s.name == name) return s.signo;
  }
  return std::nullopt;
}

// "killed by SIGSEGV", "exited with code 1", for messages.
inline std::string describe_status(int wait_status) {
  if (WIFSIGNALED(wait_status)) return "killed by SIG" + signal_name(WTERMSIG(wait_status));
  if (WIFEXITED(wait_status)) return "exited with code " + std::to_string(WEXITSTATUS(wait_status));
  return "status " + std::to_string(wait_status);
}

// ,"signal":11 or ,"exit_code":1
inline std::string status_fields(int wait_status) {
  if (WIFSIGNALED(wait_status)) return ",\"signal\":" + std::to_string(WTERMSIG(wait_status));
  return ",\"exit_code\":" + std::to_string(WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1);
}

// The ground-truth line, always faultgen's first line on stdout. `fault` is one
// of faultgen's own class names (plain identifiers, nothing to escape).
inline std::string truth_line(std::string_view fault, pid_t culprit, const std::vector<pid_t>& victims,
                              int64_t mono_ns, int64_t real_ns) {
  std::string s = "{\"fault\":\"";
  s.append(fault);
  s += "\",\"culprit\":" + std::to_string(culprit) + ",\"victims\":[";
  for (size_t i = 0; i < victims.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(victims[i]);
  }
  s += "],\"injected_mono_ns\":" + std::to_string(mono_ns) + ",\"injected_real_ns\":" + std::to_string(real_ns) +
       "}";
  return s;
}

// One crash of `faultgen crash`: when the child died (taken just before the
// faulting instruction) and how it ended.
inline std::string crash_line(pid_t pid, int64_t mono_ns, int64_t real_ns, int wait_status) {
  return "{\"crash\":" + std::to_string(pid) + ",\"mono_ns\":" + std::to_string(mono_ns) +
         ",\"real_ns\":" + std::to_string(real_ns) + status_fields(wait_status) + "}";
}

// A fault process ended before faultgen stopped it (killed by someone else,
// the OOM killer, ...): the fault is over.
inline std::string exited_line(pid_t pid, int64_t mono_ns, int64_t real_ns, int wait_status) {
  return "{\"exited\":" + std::to_string(pid) + ",\"mono_ns\":" + std::to_string(mono_ns) +
         ",\"real_ns\":" + std::to_string(real_ns) + status_fields(wait_status) + "}";
}

// How much of a rate-paced job is due `elapsed_ns` after it started: rate x
// time, rounded down to a multiple of `align`, never more than `cap`.
inline uint64_t due_bytes(double bytes_per_s, int64_t elapsed_ns, uint64_t align, uint64_t cap) {
  if (elapsed_ns <= 0 || bytes_per_s <= 0) return 0;
  double due = bytes_per_s * static_cast<double>(elapsed_ns) / 1e9;
  if (due >= static_cast<double>(cap)) return cap - cap % align;
  uint64_t n = static_cast<uint64_t>(due);
  return std::min(n - n % align, cap - cap % align);
}

}  // namespace fg
