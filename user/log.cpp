#include "log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>

#include "util/log_format.h"

namespace fp {
namespace {

int libbpf_to_spdlog(enum libbpf_print_level level, const char* fmt, va_list args) {
  spdlog::level::level_enum lvl = spdlog::level::trace;
  switch (level) {
    case LIBBPF_WARN: lvl = spdlog::level::debug; break;  // the loader reports what matters itself
    case LIBBPF_INFO: lvl = spdlog::level::debug; break;
    case LIBBPF_DEBUG: lvl = spdlog::level::trace; break;
  }
  if (!spdlog::should_log(lvl)) return 0;
  // Whole messages: the verifier's log comes as one, often many kilobytes.
  va_list again;
  va_copy(again, args);
  int n = std::vsnprintf(nullptr, 0, fmt, args);
  std::string msg(n > 0 ? size_t(n) : 0, '\0');
  if (n > 0) std::vsnprintf(msg.data(), msg.size() + 1, fmt, again);
  va_end(again);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
  // One log line per line of it: the formatter would escape the newlines
  // into one unreadable line.
  for (size_t start = 0; start <= msg.size();) {
    size_t nl = msg.find('\n', start);
    if (nl == std::string::npos) nl = msg.size();
    spdlog::log(lvl, "libbpf: {}", std::string_view(msg).substr(start, nl - start));
    start = nl + 1;
  }
  return 0;
}

}  // namespace

void init_logging(int verbosity) {
  auto logger = spdlog::get("faultprobe");
  if (!logger) logger = spdlog::stderr_color_mt("faultprobe");
  spdlog::set_default_logger(logger);
  // Messages carry process names and paths: the formatter escapes them.
  logger->set_formatter(make_safe_log_formatter("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v"));
  spdlog::set_level(verbosity >= 2 ? spdlog::level::trace
                    : verbosity == 1 ? spdlog::level::debug
                                     : spdlog::level::info);
  libbpf_set_print(libbpf_to_spdlog);
}

}  // namespace fp
