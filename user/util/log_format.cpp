#include "util/log_format.h"

#include <spdlog/pattern_formatter.h>

#include "util/text.h"

namespace fp {
namespace {

// %* : the message, escaped. A custom flag rather than a wrapper around the
// whole formatter: the level's colour range (%^ %$) that the colour sink
// reads from the message stays where the pattern formatter puts it.
class SafeMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    if (!needs_display_escape(payload)) {
      dest.append(payload.data(), payload.data() + payload.size());
      return;
    }
    std::string text = display_text(payload);
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SafeMessage>(); }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_safe_log_formatter(const std::string& pattern) {
  std::string p = pattern;
  for (size_t i = 0; (i = p.find("%v", i)) != std::string::npos; i += 2) p[i + 1] = '*';
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<SafeMessage>('*').set_pattern(p);
  return f;
}

}  // namespace fp
