#include "detect/systemd_unit.h"

#include <charconv>

namespace fp {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_unit(std::string_view c) { return ends_with(c, ".service") || ends_with(c, ".scope"); }

// "user@1000.service" -> 1000.
std::optional<uint32_t> user_manager_uid(std::string_view c) {
  constexpr std::string_view kPrefix = "user@", kSuffix = ".service";
  if (c.substr(0, kPrefix.size()) != kPrefix || !ends_with(c, kSuffix)) return std::nullopt;
  std::string_view digits = c.substr(kPrefix.size(), c.size() - kPrefix.size() - kSuffix.size());
  uint32_t uid = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), uid);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return uid;
}

}  // namespace

SystemdUnit systemd_unit_of(std::string_view cgroup) {
  SystemdUnit system, user;
  SystemdUnit* found = &system;
  size_t pos = 0;
  while (pos < cgroup.size()) {
    size_t slash = cgroup.find('/', pos);
    std::string_view comp = cgroup.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    pos = slash == std::string_view::npos ? cgroup.size() : slash + 1;
    if (comp.empty() || ends_with(comp, ".slice")) continue;
    if (!is_unit(comp)) break;  // a unit only ever sits below slices (or the root)
    found->name = std::string(comp);
    if (found == &user) return user;
    auto uid = user_manager_uid(comp);
    if (!uid) break;
    // user@UID.service is a system unit; the first unit below it is the user's.
    user.user = uid;
    found = &user;
  }
  return system;
}

std::string unit_of_cgroup(std::string_view cgroup) { return systemd_unit_of(cgroup).name; }

}  // namespace fp
