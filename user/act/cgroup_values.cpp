#include "act/cgroup_values.h"

#include <charconv>
#include <cmath>

namespace fp::cgv {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

uint64_t limit_value(std::string_view text) {
  text = trim(text);
  text = text.substr(0, text.find_first_of(" \n"));
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return kUnlimited;
  return v;
}

std::string limit_text(uint64_t v) { return v == kUnlimited ? "max" : std::to_string(v); }

std::string_view device_line(std::string_view text, std::string_view dev) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = trim(text.substr(0, eol));
    if (line.size() > dev.size() && line.substr(0, dev.size()) == dev && line[dev.size()] == ' ') return line;
    if (eol == std::string_view::npos) break;
    text.remove_prefix(eol + 1);
  }
  return {};
}

uint64_t keyed_value(std::string_view line, std::string_view key) {
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    std::string_view word = line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (word.size() > key.size() && word.substr(0, key.size()) == key && word[key.size()] == '=')
      return limit_value(word.substr(key.size() + 1));
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return kUnlimited;
}

double cpu_ratio(std::string_view quota, std::string_view period) {
  uint64_t q = limit_value(quota), p = limit_value(period);
  if (q == kUnlimited || p == kUnlimited || p == 0) return INFINITY;
  return double(q) / double(p);
}

std::string parent_path(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string child_path(const std::string& path, const std::string& name) {
  return path == "/" ? "/" + name : path + "/" + name;
}

bool below(const std::string& path, const std::string& dir) {
  if (dir == "/") return path != "/" && !path.empty() && path[0] == '/';
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

}  // namespace fp::cgv
