// What the v1 and v2 backends share: the table of throttled processes, moving
// a process into its group and back out, and the state file.
#include "act/cgroup_throttle.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "act/cgroupfs.h"

namespace fp {
namespace {

constexpr const char* kParent = "/faultprobe";

std::string group_name(const ProcKey& key) {
  return std::string(kParent) + "/p" + std::to_string(key.tgid) + "-" + std::to_string(key.start_ns);
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// "/user.slice" when every hierarchy had the same path, else "cpu:/a memory:/b".
std::string describe_original(const std::map<std::string, std::string>& original) {
  std::set<std::string> paths;
  for (const auto& [h, p] : original) paths.insert(p);
  if (paths.size() == 1) return *paths.begin();
  std::vector<std::string> parts;
  for (const auto& [h, p] : original) parts.push_back(h + ":" + p);
  return join(parts, " ");
}

std::string dir_of(const std::string& mount, const std::string& path) { return path == "/" ? mount : mount + path; }

std::string parent_path(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// Moves pid into `path` of the hierarchy at mount, or into its nearest
// ancestor when the group is gone (a service manager may have removed an
// emptied scope meanwhile). Returns the path it went to.
Result<std::string> move_back(pid_t pid, const std::string& mount, std::string path) {
  for (;;) {
    auto r = move_process(pid, dir_of(mount, path));
    if (r.ok()) return path;
    if (r.error().code != ENOENT || path == "/") return r.error();
    path = parent_path(path);
  }
}

}  // namespace

CgroupThrottle::CgroupThrottle(std::string proc_root, std::string state_path)
    : proc_root_(std::move(proc_root)), state_path_(std::move(state_path)) {}

std::vector<ProcKey> CgroupThrottle::throttled_keys() const {
  std::vector<ProcKey> keys;
  for (const auto& [k, e] : entries_) keys.push_back(k);
  return keys;
}

Result<std::string> CgroupThrottle::throttle(const ProcKey& key, const ThrottleLimits& l) {
  return apply(key, pid_t(key.tgid), l);
}

Result<std::string> CgroupThrottle::throttle_group(const ProcKey& key, pid_t owner, const std::vector<pid_t>& pids,
                                                   const ThrottleLimits& l) {
  auto r = apply(key, owner, l);
  if (!r.ok()) return r;
  const ThrottleEntry& e = entries_.at(key);
  // The owner too: a throttle already in place did not move it again.
  size_t moved = 0, gone = 0;
  std::vector<std::string> failed;
  for (pid_t pid : pids) {
    bool in = true;
    for (const auto& [h, orig] : e.original) {
      auto m = move_process(pid, group_dir(h, e.group));
      if (m.ok()) continue;
      in = false;
      if (m.error().code == ESRCH)
        ++gone;
      else
        failed.push_back(m.error().message);
      break;
    }
    moved += in;
  }
  std::string detail = *r + "; " + std::to_string(moved) + " member(s) of the group moved in";
  if (gone != 0) detail += ", " + std::to_string(gone) + " had exited";
  for (const auto& f : failed) detail += "; " + f;
  spdlog::info("throttle ({}): group of pid {}: {}", name(), key.tgid, detail);
  return detail;
}

bool CgroupThrottle::members_left(const ProcKey& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  for (const auto& [h, orig] : it->second.original) {
    auto pids = read_group_pids(group_dir(h, it->second.group));
    if (pids.ok() && !pids->empty()) return true;
  }
  return false;
}

Result<std::string> CgroupThrottle::apply(const ProcKey& key, pid_t owner, const ThrottleLimits& l) {
  if (l.empty()) return Error{EINVAL, "throttle of pid " + std::to_string(key.tgid) + " without any limit"};
  std::string why;
  if (!supports(l, &why)) return Error{EOPNOTSUPP, why};

  std::vector<std::string> devices;
  if (l.io_bps) {
    if (!io_devices_) io_devices_ = default_io_devices();
    devices = *io_devices_;
    if (devices.empty()) return Error{ENODEV, "no block device to write an io limit for"};
  }

  auto it = entries_.find(key);
  const bool fresh = it == entries_.end();
  ThrottleEntry e = fresh ? ThrottleEntry{key, {}, group_name(key), {}, {}} : it->second;

  // Hierarchies the process has not been moved into yet: where it is now
  // in each of them is where release will put it back.
  std::vector<std::pair<std::string, std::string>> to_move;  // hierarchy -> original path
  std::vector<std::string> needed;
  for (const auto& h : hierarchies_for(l))
    if (!e.original.count(h)) needed.push_back(h);
  if (!needed.empty()) {
    std::string cg_file = proc_root_ + "/" + std::to_string(owner) + "/cgroup";
    auto text = read_text(cg_file);
    if (!text.ok()) return text.error();
    ProcCgroups pc = parse_proc_cgroups(*text);
    for (const auto& h : needed) {
      auto orig = original_in(pc, h);
      if (!orig) return Error{ENOENT, cg_file + " lists no cgroup for hierarchy " + h};
      to_move.emplace_back(h, *orig);
    }
  }

  if (auto r = prepare_parents(l); !r.ok()) return r.error();

  // A fresh throttle that fails half-way is rolled back: the process ends
  // where it was, with no group left behind.
  auto fail = [&](Error err) -> Error {
    if (fresh && !e.original.empty()) {
      auto undone = undo(e);
      err.message += undone.ok() ? " (rolled back)" : " (rollback failed: " + undone.error().message + ")";
    }
    if (!fresh) entries_[key] = e;  // hierarchies entered so far stay recorded for release
    save();
    return err;
  };

  for (const auto& [h, orig] : to_move) {
    std::string mount = mount_of(h);
    std::string dir = group_dir(h, e.group);
    if (auto r = make_group(mount + kParent); !r.ok()) return fail(r.error());
    if (auto r = make_group(dir); !r.ok()) return fail(r.error());
    before_move(h, dir);
    if (auto r = move_process(owner, dir); !r.ok()) {
      (void)remove_group(dir);
      Error err = r.error();
      if (err.code == ESRCH) err.message = "pid " + std::to_string(owner) + " exited: " + err.message;
      return fail(err);
    }
    e.original[h] = orig;
  }

  std::vector<std::string> done;
  if (auto r = write_limits(e.group, l, devices, e.limits, e.io_devices, &done); !r.ok()) return fail(r.error());
  e.limits = l;
  e.io_devices = devices;
  entries_[key] = e;
  save();

  std::string detail = join(done, ", ") + " in " + e.group + " (was " + describe_original(e.original) + ")";
  spdlog::info("throttle ({}): pid {}: {}", name(), key.tgid, detail);
  return detail;
}

Result<std::string> CgroupThrottle::undo(const ThrottleEntry& e) {
  std::vector<std::string> notes;
  std::optional<Error> failed;
  std::set<std::string> removed;
  for (const auto& [h, orig] : e.original) {
    std::string mount = mount_of(h);
    std::string dir = group_dir(h, e.group);
    if (removed.count(dir)) continue;  // co-mounted controllers share one group
    // Retried because on cgroupfs rmdir fails (EBUSY) while a process is in
    // the group: one forked between the read and the move, or one exiting.
    Result<void> rm = Error{EBUSY, "not tried"};
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto pids = read_group_pids(dir);
      if (!pids.ok() && pids.error().code == ENOENT) {  // group already gone
        rm = {};
        break;
      }
      bool main_moved = false;
      if (pids.ok()) {
        for (pid_t pid : *pids) {
          auto moved = move_back(pid, mount, orig);
          if (moved.ok()) {
            if (pid == pid_t(e.key.tgid) && !main_moved) {
              main_moved = true;
              notes.push_back(std::string(h == "v2" ? "" : h + ": ") + "moved back to " + *moved);
            }
          } else if (moved.error().code != ESRCH) {
            failed = moved.error();
          }
        }
        if (attempt == 0 && std::find(pids->begin(), pids->end(), pid_t(e.key.tgid)) == pids->end())
          notes.push_back(std::string(h == "v2" ? "" : h + ": ") + "pid " + std::to_string(e.key.tgid) +
                          " had exited or left the group");
      }
      if (failed) break;
      rm = remove_group(dir);
      if (rm.ok() || rm.error().code != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (failed) return *failed;
    if (rm.ok()) {
      removed.insert(dir);
    } else {
      // The process is back where it was; an empty group left behind is
      // harmless and the next daemon start sweeps it.
      spdlog::warn("throttle ({}): could not remove {}: {}", name(), dir, rm.error().message);
      notes.push_back("could not remove " + dir + ": " + rm.error().message);
    }
  }
  std::sort(notes.begin(), notes.end());
  notes.erase(std::unique(notes.begin(), notes.end()), notes.end());
  return join(notes, ", ") + (removed.empty() ? "" : ", removed " + e.group);
}

Result<std::string> CgroupThrottle::release(const ProcKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end())
    return Error{ENOENT, "pid " + std::to_string(key.tgid) + " is not throttled (" + name() + ")"};
  auto r = undo(it->second);
  if (!r.ok()) {
    spdlog::warn("throttle ({}): release of pid {} failed: {}", name(), key.tgid, r.error().message);
    return r.error();
  }
  entries_.erase(it);
  save();
  spdlog::info("throttle ({}): released pid {}: {}", name(), key.tgid, *r);
  return r;
}

void CgroupThrottle::release_all() {
  for (const auto& key : throttled_keys()) (void)release(key);
  if (!entries_.empty()) return;
  // The parent groups go too when nothing is left in them (EBUSY otherwise).
  std::set<std::string> parents;
  for (const auto& h : all_hierarchies()) parents.insert(mount_of(h) + kParent);
  for (const auto& p : parents) (void)remove_group(p);
}

void CgroupThrottle::save() const {
  if (state_path_.empty()) return;
  ThrottleState st{name(), {}};
  for (const auto& [k, e] : entries_) st.entries.push_back(e);
  if (auto r = save_throttle_state(state_path_, st); !r.ok())
    spdlog::error("throttle ({}): could not save the table of throttles: {}", name(), r.error().message);
}

void CgroupThrottle::load_state() {
  if (state_path_.empty()) return;
  auto st = load_throttle_state(state_path_);
  if (!st.ok()) {
    spdlog::error("throttle ({}): ignoring the saved throttles: {}", name(), st.error().message);
    return;
  }
  if (!st->entries.empty() && st->backend != name()) {
    spdlog::warn("throttle ({}): {} holds throttles of backend {}; they cannot be undone by this one",
                 name(), state_path_, st->backend);
    return;
  }
  bool changed = false;
  for (const auto& e : st->entries) {
    // Still the same process: its tgid is listed in its group. A pid reused
    // by a new process would have been born elsewhere.
    bool alive = false;
    if (!e.original.empty()) {
      auto pids = read_group_pids(group_dir(e.original.begin()->first, e.group));
      alive = pids.ok() && std::find(pids->begin(), pids->end(), pid_t(e.key.tgid)) != pids->end();
    }
    if (alive) {
      entries_[e.key] = e;
      spdlog::info("throttle ({}): pid {} is still throttled in {} (from a previous run)", name(), e.key.tgid,
                   e.group);
      continue;
    }
    changed = true;
    auto r = undo(e);
    spdlog::info("throttle ({}): pid {} of a previous run is gone: {}", name(), e.key.tgid,
                 r.ok() ? *r : r.error().message);
  }
  // Groups of ours nobody recorded (a crash between mkdir and save, a removal
  // that failed): the empty ones go; ones with processes are left, since
  // where those came from is unknown.
  std::set<std::string> recorded;
  for (const auto& [k, e] : entries_) recorded.insert(e.group);
  for (const auto& h : all_hierarchies()) {
    std::string parent = mount_of(h) + kParent;
    for (const auto& name_ : list_subdirs(parent)) {
      if (name_.empty() || name_[0] != 'p' || recorded.count(std::string(kParent) + "/" + name_)) continue;
      std::string dir = parent + "/" + name_;
      auto pids = read_group_pids(dir);
      if (pids.ok() && pids->empty()) {
        (void)remove_group(dir);
      } else {
        spdlog::warn("throttle ({}): {} has processes but no record of where they came from; left alone", name(),
                     dir);
      }
    }
  }
  if (changed) save();
}

}  // namespace fp
