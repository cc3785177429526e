// What the v1 and v2 backends share: the table of throttled processes, the
// limits written into (and lifted from) each place, undoing a throttle, and
// the state file. Choosing and making a place is in cgroup_place.cpp.
#include "act/cgroup_throttle.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include <spdlog/spdlog.h>

#include "act/cgroup_values.h"

namespace fp {
namespace {

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (p.empty()) continue;
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

SavedValue* saved_of(ThrottlePlace& p, const ControlWrite& w) {
  for (auto& s : p.saved)
    if (s.controller == w.controller && s.file == w.file && s.device == w.device) return &s;
  return nullptr;
}

// The group the old design made at each hierarchy's root for every throttle.
constexpr const char* kLegacyParent = "/faultprobe";

}  // namespace

CgroupThrottle::CgroupThrottle(CgroupThrottleEnv env)
    : proc_root_(std::move(env.proc_root)),
      state_path_(std::move(env.state_path)),
      ops_(env.ops ? env.ops : &real_cgroup_ops()) {}

uint64_t CgroupThrottle::ancestors_limit(const std::string& hierarchy, const std::string& path,
                                         const std::string& file) const {
  uint64_t low = cgv::kUnlimited;
  for (std::string a = path; a != "/";) {
    a = cgv::parent_path(a);
    if (auto text = ops().read(dir_of(hierarchy, a) + "/" + file); text.ok()) low = std::min(low, cgv::limit_value(*text));
  }
  return low;
}

std::vector<ProcKey> CgroupThrottle::throttled_keys() const {
  std::vector<ProcKey> keys;
  for (const auto& [k, e] : entries_) keys.push_back(k);
  return keys;
}

Result<std::string> CgroupThrottle::throttle(const ProcKey& key, const ThrottleLimits& l) {
  if (l.empty()) return Error{EINVAL, "throttle of pid " + std::to_string(key.tgid) + " without any limit"};
  std::string why;
  if (!supports(l, &why)) return Error{EOPNOTSUPP, why};

  std::vector<std::string> devices;
  if (l.io_bps) {
    if (!io_devices_) io_devices_ = default_io_devices();
    devices = *io_devices_;
    if (devices.empty()) return Error{ENODEV, "no block device to write an io limit for"};
  }

  // The controllers of each hierarchy the limits need, in the order needed.
  std::vector<std::pair<std::string, std::vector<std::string>>> needed;
  for (const auto& c : controllers_for(l)) {
    std::string h = hierarchy_of(c);
    auto it = std::find_if(needed.begin(), needed.end(), [&](const auto& n) { return n.first == h; });
    if (it == needed.end()) it = needed.insert(needed.end(), {h, {}});
    it->second.push_back(c);
  }

  auto [it, fresh] = entries_.try_emplace(key);
  ThrottleEntry& e = it->second;
  e.key = key;
  // A fresh throttle that fails half-way is rolled back: the process ends
  // where it was, with the values it had and no group left behind.
  auto fail = [&](Error err) -> Error {
    if (fresh) {
      auto undone = undo(e);
      err.message += undone.ok() ? " (rolled back)" : " (rollback failed: " + undone.error().message + ")";
      if (undone.ok() || e.places.empty()) entries_.erase(key);
    }
    save();
    return err;
  };

  std::map<std::string, std::string> how;  // hierarchy -> how its place was chosen
  std::optional<ProcCgroups> pc;
  for (const auto& [h, ctrls] : needed) {
    auto have = std::find_if(e.places.begin(), e.places.end(), [&](const auto& p) { return p.hierarchy == h; });
    if (have != e.places.end()) {
      // Already throttled there: a controller added now may need enabling.
      if (auto r = prepare_controllers(*have, ctrls); !r.ok()) return fail(r.error());
      continue;
    }
    // Where it is now in this hierarchy is where an undo puts it back.
    std::string cg_file = proc_root_ + "/" + std::to_string(key.tgid) + "/cgroup";
    if (!pc) {
      auto text = ops().read(cg_file);
      if (!text.ok()) return fail(text.error());
      pc = parse_proc_cgroups(*text);
    }
    auto orig = original_in(*pc, h);
    if (!orig) return fail(Error{ENOENT, cg_file + " lists no cgroup for hierarchy " + h});
    e.places.push_back(ThrottlePlace{h, ThrottlePlace::Mode::Child, *orig, "", "", {}, {}});
    auto r = enter_place(e, e.places.back(), ctrls);
    if (!r.ok()) return fail(r.error());
    how[h] = *r;
  }

  auto done = apply_limits(e, l, devices);
  if (!done.ok()) return fail(done.error());
  e.limits = l;
  e.io_devices = devices;
  save();

  std::vector<std::string> parts;
  for (size_t i = 0; i < e.places.size(); ++i) {
    const ThrottlePlace& p = e.places[i];
    auto h = how.find(p.hierarchy);
    parts.push_back((v2() ? "" : p.hierarchy + ": ") + (*done)[i] + (h != how.end() ? " (" + h->second + ")" : ""));
  }
  std::string detail = join(parts, "; ");
  spdlog::info("throttle ({}): pid {}: {}", name(), key.tgid, detail);
  return detail;
}

Result<std::vector<std::string>> CgroupThrottle::apply_limits(ThrottleEntry& e, const ThrottleLimits& l,
                                                              const std::vector<std::string>& devices) {
  std::vector<std::string> out;  // per place: what was written, "in GROUP"
  const auto wanted = controllers_for(l);
  for (auto& p : e.places) {
    const std::string dir = dir_of(p.hierarchy, p.group);
    std::vector<std::string> done;
    for (const auto& c : wanted) {
      if (hierarchy_of(c) != p.hierarchy) continue;
      auto writes = writes_for(c, l, devices, p.group, before_of(p, c));
      if (writes.empty()) {
        // Lower already (here or above): a throttle raises no limit.
        std::vector<std::string> lifted;
        if (auto r = restore_saved(p, c, &lifted); !r.ok()) return r.error();
        done.push_back(c + " already at or below the limit" + (lifted.empty() ? "" : " (" + join(lifted, ", ") + ")"));
        continue;
      }
      for (const auto& w : writes) {
        // On record before the write: a crash after it still has the old value.
        if (!saved_of(p, w)) {
          p.saved.push_back(SavedValue{w.controller, w.file, w.device, w.restore});
          save();
        }
        if (auto r = ops().write(dir + "/" + w.file, w.value); !r.ok()) return explain(dir, w, r.error());
        done.push_back(w.file + "=" + w.value);
      }
    }
    // Limits the throttle no longer asks for: what was there before comes back.
    std::set<std::string> dropped;
    for (const auto& s : p.saved)
      if (std::find(wanted.begin(), wanted.end(), s.controller) == wanted.end()) dropped.insert(s.controller);
    for (const auto& c : dropped)
      if (auto r = restore_saved(p, c, &done); !r.ok()) return r.error();
    out.push_back((done.empty() ? std::string("nothing to write") : join(done, ", ")) + " in " + p.group);
  }
  return out;
}

CgroupThrottle::BeforeFn CgroupThrottle::before_of(const ThrottlePlace& p, const std::string& controller) const {
  return [this, &p, controller](const std::string& file, const std::string& device) -> std::string {
    for (const auto& s : p.saved)
      if (s.controller == controller && s.file == file && s.device == device) return s.value;
    auto text = ops().read(dir_of(p.hierarchy, p.group) + "/" + file);
    return text.ok() ? *text : std::string();
  };
}

Result<void> CgroupThrottle::restore_saved(ThrottlePlace& p, const std::string& controller,
                                           std::vector<std::string>* done) {
  const std::string dir = dir_of(p.hierarchy, p.group);
  std::optional<Error> failed;
  for (auto it = p.saved.rbegin(); it != p.saved.rend();) {
    if (!controller.empty() && it->controller != controller) {
      ++it;
      continue;
    }
    auto r = ops().write(dir + "/" + it->file, it->value);
    if (r.ok()) {
      if (done) done->push_back(it->file + "=" + it->value);
    } else if (r.error().code != ENOENT && !failed) {  // ENOENT: the group is gone, nothing to restore
      failed = r.error();
    }
    it = decltype(it)(p.saved.erase(std::next(it).base()));
  }
  save();
  if (failed) return *failed;
  return {};
}

Result<std::string> CgroupThrottle::undo(ThrottleEntry& e) {
  std::vector<std::string> notes;
  while (!e.places.empty()) {
    auto r = undo_place(e, e.places.back());
    if (!r.ok()) return r.error();
    notes.push_back(*r);
    e.places.pop_back();
    save();
  }
  std::reverse(notes.begin(), notes.end());
  return join(notes, "; ");
}

Result<std::string> CgroupThrottle::add_members(const ProcKey& key, const std::vector<pid_t>& pids) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return Error{ENOENT, "pid " + std::to_string(key.tgid) + " is not throttled"};
  size_t moved = 0, gone = 0;
  std::vector<std::string> failed;
  for (pid_t pid : pids) {
    if (pid == pid_t(key.tgid)) continue;
    bool in = true;
    for (const ThrottlePlace& p : it->second.places) {
      auto m = ops().move(pid, dir_of(p.hierarchy, p.group));
      if (m.ok()) continue;
      in = false;
      if (m.error().code == ESRCH)
        ++gone;
      else
        failed.push_back("pid " + std::to_string(pid) + ": " + m.error().message);
      break;
    }
    moved += in;
  }
  std::string detail = std::to_string(moved) + " other member(s) of the group moved in";
  if (gone != 0) detail += ", " + std::to_string(gone) + " had exited";
  if (!failed.empty()) detail += "; not moved: " + join(failed, "; ");
  spdlog::info("throttle ({}): group of pid {}: {}", name(), key.tgid, detail);
  return detail;
}

bool CgroupThrottle::members_left(const ProcKey& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  for (const ThrottlePlace& p : it->second.places) {
    auto pids = ops().pids(dir_of(p.hierarchy, p.group));
    if (pids.ok() && !pids->empty()) return true;
  }
  return false;
}

Result<std::string> CgroupThrottle::release(const ProcKey& key) {
  auto it = entries_.find(key);
  if (it == entries_.end())
    return Error{ENOENT, "pid " + std::to_string(key.tgid) + " is not throttled (" + name() + ")"};
  auto r = undo(it->second);
  if (!r.ok()) {
    spdlog::warn("throttle ({}): release of pid {} failed: {}", name(), key.tgid, r.error().message);
    save();
    return r.error();
  }
  entries_.erase(it);
  drifts_.erase(key);
  save();
  spdlog::info("throttle ({}): released pid {}: {}", name(), key.tgid, *r);
  return r;
}

void CgroupThrottle::release_all() {
  for (const auto& key : throttled_keys()) (void)release(key);
  remove_legacy_groups();
}

// Groups of the previous design (<root>/faultprobe/p<tgid>-<start>): the
// empty ones go, and their parent with them.
void CgroupThrottle::remove_legacy_groups() {
  for (const auto& h : all_hierarchies()) {
    std::string parent = mount_of(h) + kLegacyParent;
    if (!ops().status(parent).ok()) continue;
    for (const auto& sub : ops().subdirs(parent)) {
      auto pids = ops().pids(parent + "/" + sub);
      if (pids.ok() && pids->empty()) (void)ops().remove_group(parent + "/" + sub);
    }
    (void)ops().remove_group(parent);
  }
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
  // Still the same process: its tgid is listed where the throttle put it (a
  // pid reused by a new process would have been born elsewhere, unless in
  // the very cgroup a Limit place is: then the undo comes a little late,
  // and restores the same values).
  std::vector<ProcKey> gone;
  for (auto& e : st->entries) {
    bool alive = false;
    if (!e.places.empty()) {
      const ThrottlePlace& p = e.places.front();
      auto pids = ops().pids(dir_of(p.hierarchy, p.group));
      alive = pids.ok() && std::find(pids->begin(), pids->end(), pid_t(e.key.tgid)) != pids->end();
    }
    if (alive)
      spdlog::info("throttle ({}): pid {} is still throttled (from a previous run)", name(), e.key.tgid);
    else
      gone.push_back(e.key);
    entries_[e.key] = std::move(e);
  }
  // Undone in the table, so that until each is, it stays on record and the
  // others see what it still needs (a controller enabled, a leaf).
  for (const ProcKey& k : gone) {
    auto r = undo(entries_[k]);
    spdlog::info("throttle ({}): pid {} of a previous run is gone: {}", name(), k.tgid,
                 r.ok() ? *r : r.error().message);
    if (r.ok()) entries_.erase(k);
  }
  remove_legacy_groups();
  if (!gone.empty()) save();
}

}  // namespace fp
