// Every key the config parser knows, per section, read from the parser's own
// key lists (so a key added there shows up here by itself). For
// `faultprobe check-config --list-keys`, which the man-page test reads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fp {

// section: "" (the top level), "rules.CLASS" (a built-in rule's override),
// "rule" (an added [[rule]]), "match", "policy", "service", "checkpoint",
// "limits", "daemon", "hardware".
struct KnownKeys {
  std::string section;
  std::vector<std::string_view> keys;
};
std::vector<KnownKeys> known_config_keys();

}  // namespace fp
