#include "daemon/service_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace fp {

Result<void> check_config_file_safe(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Error::from_errno(errno, "cannot read the config file " + path);
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, path + " is not a regular file"};
  if (st.st_mode & S_IWOTH)
    return Error{EPERM, path + " is world-writable: refusing a config that decides what faultprobed may kill "
                               "(chmod o-w " + path + ")"};
  if ((st.st_mode & S_IWGRP) && st.st_gid != 0)
    return Error{EPERM, path + " is writable by group " + std::to_string(st.st_gid) +
                            ": refusing it (chmod g-w " + path + ")"};
  if (st.st_uid != 0 && st.st_uid != geteuid())
    return Error{EPERM, path + " is owned by uid " + std::to_string(st.st_uid) + ", not root: refusing it"};
  return {};
}

Result<Config> load_service_config(const ServiceOptions& opts) {
  Config cfg;
  if (opts.config_path.empty()) {
    cfg = default_config();
  } else {
    if (auto safe = check_config_file_safe(opts.config_path); !safe) return safe.error();
    auto c = load_config_file(opts.config_path);
    if (!c) return c.error();
    cfg = std::move(c).value();
  }
  // A mistake in a [[logwatch]] costs that rule only: say so, loudly, and run the rest.
  for (const std::string& why : cfg.left_out) spdlog::error("config: left out: {}", why);
  if (opts.pin_dir) cfg.daemon.pin_dir = *opts.pin_dir;
  if (opts.lock_path) cfg.daemon.lock_path = *opts.lock_path;
  return cfg;
}

}  // namespace fp
