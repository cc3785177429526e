#include "util/assignments.h"

namespace fp {

std::vector<std::pair<std::string, std::string>> split_assignments(std::string_view raw, char sep) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t end = raw.find(sep, pos);
    std::string_view entry = raw.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? raw.size() : end + 1;
    size_t eq = entry.find('=');
    if (entry.empty() || eq == std::string_view::npos || eq == 0) continue;  // not NAME=VALUE
    out.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return out;
}

}  // namespace fp
