// Which systemd unit a cgroup path belongs to, and which manager owns it.
//
// The system manager puts units directly below slices ("/system.slice/
// nginx.service"); everything below a unit belongs to that unit, whatever its
// name. Below user@UID.service the tree is delegated to that user's own
// manager, and to the user: they can create cgroups there with any name,
// "sshd.service" included. So the unit is the first .service/.scope after the
// slices (a container's or a delegated service's own sub-groups never name
// the unit), and under user@UID.service the same rule names a *user* unit of
// UID, which only `systemctl --user -M UID@` may act on.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fp {

struct SystemdUnit {
  std::string name;              // "" when the path names no unit
  std::optional<uint32_t> user;  // uid of the user manager that owns it; nullopt: the system manager
  bool operator==(const SystemdUnit&) const = default;
};

SystemdUnit systemd_unit_of(std::string_view cgroup);

// Just the name: systemd_unit_of(cgroup).name.
std::string unit_of_cgroup(std::string_view cgroup);

}  // namespace fp
