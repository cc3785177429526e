// Where a throttle goes in one hierarchy (see cgroup_throttle.h): refusing a
// delegated subtree, choosing Limit / Child / Leaf, making the groups and
// moving the processes that needs, enabling v2 controllers on the way down;
// and undoing all of it. Every step is on record (save()) before it is taken.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "act/cgroup_throttle.h"
#include "act/cgroup_values.h"

namespace fp {
namespace {

using namespace cgv;

constexpr const char* kLeafName = "faultprobe-leaf";
constexpr const char* kOwnPrefix = "faultprobe-p";
// Bounded retries of a step a concurrent fork or exit can make fail once.
constexpr int kAttempts = 20;

std::string own_name(const ProcKey& key) {
  return kOwnPrefix + std::to_string(key.tgid) + "-" + std::to_string(key.start_ns);
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w[0] == '+' ? w.substr(1) : w);
  return out;
}

// "+cpu +pids": the words, each with a prefix, joined.
std::string list(const std::vector<std::string>& v, const char* prefix, const char* sep = " ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + std::string(prefix) + s;
  return out;
}

void pause_briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(2)); }

}  // namespace

Result<void> CgroupThrottle::refuse_delegated(const ProcKey& key, const std::string& hierarchy,
                                              const std::string& path) {
  // A user who owns a group (or its cgroup.procs) may create groups in it and
  // move their processes anywhere below it: out of any group we make there,
  // and a limit we write into a group they made is theirs to rewrite. Such a
  // subtree is theirs (systemd's Delegate=, user@UID.service, a rootless
  // container); a throttle there would be theirs to undo. (cgroupfs has no
  // symlinks, so a path cannot lead a write of ours out of the hierarchy.)
  const uid_t self = ::geteuid();
  for (std::string p = path; p != "/"; p = parent_path(p)) {
    const std::string dir = dir_of(hierarchy, p);
    for (const std::string& f : {dir, dir + "/cgroup.procs"}) {
      auto st = ops().status(f);
      if (!st.ok()) return st.error();
      if (st->st_uid == self && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0) continue;
      return Error{EPERM, "pid " + std::to_string(key.tgid) + " is in " + path + ", a cgroup subtree delegated to uid " +
                              std::to_string(st->st_uid) + " (" + f +
                              " is theirs to write): a throttle there would be theirs to undo; not throttled"};
    }
  }
  return {};
}

Result<std::string> CgroupThrottle::enter_place(ThrottleEntry& e, ThrottlePlace& p,
                                                const std::vector<std::string>& controllers) {
  const pid_t pid = pid_t(e.key.tgid);
  if (auto r = refuse_delegated(e.key, p.hierarchy, p.original); !r.ok()) return r.error();
  const std::string from = p.original, base = from.substr(from.rfind('/') + 1), home = parent_path(from);
  const bool beside = from != "/" && (base == kLeafName || base.rfind(kOwnPrefix, 0) == 0);
  const std::string here = dir_of(p.hierarchy, from);
  size_t others = 0;
  if (p.original == "/") {
    // The root has no limits of its own to keep: a child of it is in place.
    p.mode = ThrottlePlace::Mode::Child;
    p.group = child_path("/", own_name(e.key));
  } else if (beside) {
    // In a group of ours (another throttle's, or a leaf): its own group goes
    // beside that one, in the cgroup they all came from. Undone, it goes back
    // to that group if it is still there (Child), or among the companions of
    // the leaf (Leaf).
    if (!v2() || home == "/") {
      p.mode = ThrottlePlace::Mode::Child;
      p.group = child_path(home, own_name(e.key));
    } else {
      p.mode = ThrottlePlace::Mode::Leaf;
      p.original = home;
      p.group = child_path(home, own_name(e.key));
      p.leaf = child_path(home, kLeafName);
    }
  } else {
    auto pids = ops().pids(here);
    if (!pids.ok()) return pids.error();
    others = size_t(std::count_if(pids->begin(), pids->end(), [&](pid_t q) { return q != pid; }));
    const bool listed = others < pids->size();
    if (!listed) return Error{ESRCH, "pid " + std::to_string(pid) + " is no longer in " + p.original};
    if (others == 0 && ops().subdirs(here).empty()) {
      p.mode = ThrottlePlace::Mode::Limit;
      p.group = p.original;
    } else if (!v2()) {
      p.mode = ThrottlePlace::Mode::Child;
      p.group = child_path(p.original, own_name(e.key));
    } else {
      p.mode = ThrottlePlace::Mode::Leaf;
      p.group = child_path(p.original, own_name(e.key));
      p.leaf = child_path(p.original, kLeafName);
    }
  }
  save();  // the plan is on record before anything changes

  const std::string group_dir = dir_of(p.hierarchy, p.group);
  auto move_in = [&]() -> Result<void> {
    if (auto r = ops().make_group(group_dir); !r.ok()) return r;
    before_move(p.hierarchy, group_dir);
    auto r = ops().move(pid, group_dir);
    if (!r.ok() && r.error().code == ESRCH)
      return Error{ESRCH, "pid " + std::to_string(pid) + " exited: " + r.error().message};
    return r;
  };
  switch (p.mode) {
    case ThrottlePlace::Mode::Limit:
      if (auto r = prepare_controllers(p, controllers); !r.ok()) return r.error();
      return std::string("its own cgroup, where it is alone");
    case ThrottlePlace::Mode::Child:
      if (auto r = prepare_controllers(p, controllers); !r.ok()) return r.error();
      if (auto r = move_in(); !r.ok()) return r.error();
      if (beside) return "beside " + from + ", where it was, below " + home;
      if (p.original == "/") return std::string("a new group below the root, where it was");
      if (others == 0) return "a new child of " + p.original + ", which has child groups";
      return "a new child of " + p.original + ", which it shares with " + std::to_string(others) + " other process" +
             (others == 1 ? "" : "es");
    case ThrottlePlace::Mode::Leaf: {
      if (auto r = make_available(p, p.original, controllers); !r.ok()) return r.error();
      if (auto r = move_in(); !r.ok()) return r.error();
      auto moved = empty_into_leaf(p, controllers);
      if (!moved.ok()) return moved.error();
      if (beside) return "beside " + from + ", where it was, below " + home;
      return "its cgroup " + p.original + " held " + std::to_string(*moved) + " other process" +
             (*moved == 1 ? "" : "es") + ", moved to " + p.leaf +
             ": cgroup v2 hands controllers to the children only of a group without processes";
    }
  }
  return Error{EINVAL, "unknown place mode"};
}

Result<void> CgroupThrottle::prepare_controllers(ThrottlePlace& p, const std::vector<std::string>& controllers) {
  if (!v2()) return {};  // every v1 group has every control file of its hierarchy
  switch (p.mode) {
    case ThrottlePlace::Mode::Limit:
    case ThrottlePlace::Mode::Child:
      return make_available(p, p.group, controllers);
    case ThrottlePlace::Mode::Leaf:
      // The leaf structure is there: its cgroup has no processes left to refuse it.
      if (auto r = make_available(p, p.original, controllers); !r.ok()) return r;
      return enable_in(p, p.original, controllers);
  }
  return {};
}

// v2: a group has the control files of the controllers its parent enables in
// cgroup.subtree_control, which the parent can only do for the ones it has.
Result<void> CgroupThrottle::make_available(ThrottlePlace& p, const std::string& path,
                                            const std::vector<std::string>& controllers) {
  if (path == "/") return {};  // the root has what cgroup.controllers lists (supports() checked)
  const std::string parent = parent_path(path);
  auto text = ops().read(dir_of(p.hierarchy, parent) + "/cgroup.subtree_control");
  std::vector<std::string> have = text.ok() ? words(*text) : std::vector<std::string>{};
  std::vector<std::string> missing;
  for (const auto& c : controllers)
    if (std::find(have.begin(), have.end(), c) == have.end()) missing.push_back(c);
  if (missing.empty()) return {};
  if (auto r = make_available(p, parent, missing); !r.ok()) return r;
  return enable_in(p, parent, missing);
}

Result<void> CgroupThrottle::enable_in(ThrottlePlace& p, const std::string& path,
                                       const std::vector<std::string>& controllers) {
  const std::string file = dir_of(p.hierarchy, path) + "/cgroup.subtree_control";
  auto text = ops().read(file);
  std::vector<std::string> have = text.ok() ? words(*text) : std::vector<std::string>{};
  std::vector<std::string> add;
  for (const auto& c : controllers)
    if (std::find(have.begin(), have.end(), c) == have.end()) add.push_back(c);
  if (add.empty()) return {};
  const size_t before = p.enabled.size();
  for (const auto& c : add) p.enabled.emplace_back(path, c);
  save();
  auto r = ops().write(file, list(add, "+"));
  if (r.ok()) return {};
  p.enabled.resize(before);
  save();
  Error err = r.error();
  if (err.code == EBUSY)
    err.message = "cannot enable " + list(add, "") + " in " + path + ": it has processes of its own (cgroup v2 " +
                  "hands controllers down only from a group without processes): " + err.message;
  return err;
}

// Moves every process of p.original to the leaf and enables the controllers
// in p.original. A process forked into it between the two makes the
// enabling fail (EBUSY): again. The moves go by pid, as cgroup.procs takes
// them: a process that exits and whose pid is reused between the read and
// the write would be moved instead (a full pid wrap within microseconds);
// it would stay inside the same cgroup, under the same limits.
Result<size_t> CgroupThrottle::empty_into_leaf(ThrottlePlace& p, const std::vector<std::string>& controllers) {
  const std::string here = dir_of(p.hierarchy, p.original), leaf_dir = dir_of(p.hierarchy, p.leaf);
  size_t moved = 0;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto pids = ops().pids(here);
    if (!pids.ok()) return pids.error();
    if (!pids->empty())
      if (auto r = ops().make_group(leaf_dir); !r.ok()) return r.error();
    for (pid_t q : *pids) {
      auto r = ops().move(q, leaf_dir);
      if (r.ok()) {
        ++moved;
      } else if (r.error().code != ESRCH) {
        return r.error();
      }
    }
    auto en = enable_in(p, p.original, controllers);
    if (en.ok()) return moved;
    if (en.error().code != EBUSY) return en.error();
    pause_briefly();
  }
  return Error{EBUSY, "processes kept appearing in " + p.original + " while it was being emptied"};
}

ThrottlePlace* CgroupThrottle::other_below(const ProcKey& self, const std::string& hierarchy, const std::string& path) {
  for (auto& [k, e] : entries_) {
    if (k == self) continue;
    for (auto& p : e.places)
      if (p.hierarchy == hierarchy && below(p.group, path)) return &p;
  }
  return nullptr;
}

namespace {

// Moves every process listed in `from` to `to`; a process that exited is
// skipped. Returns how many went.
Result<size_t> move_all(CgroupOps& ops, const std::string& from, const std::string& to) {
  auto pids = ops.pids(from);
  if (!pids.ok()) return pids.error().code == ENOENT ? Result<size_t>(size_t(0)) : pids.error();
  size_t n = 0;
  for (pid_t q : *pids) {
    auto r = ops.move(q, to);
    if (r.ok()) ++n;
    else if (r.error().code != ESRCH) return r.error();
  }
  return n;
}

// Moves everything in a group of ours to `to` and removes the group; a fork
// racing the moves keeps it busy (EBUSY) for a moment, so the moves are
// repeated. An error: a process could not be moved. False: the group could
// not be removed (it stays, empty or not, and says why in *why).
Result<bool> empty_and_remove(CgroupOps& ops, const std::string& dir, const std::string& to, std::string* why) {
  Result<void> rm = Error{EBUSY, "not tried"};
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    if (auto m = move_all(ops, dir, to); !m.ok()) return m.error();
    rm = ops.remove_group(dir);
    if (rm.ok() || rm.error().code != EBUSY) break;
    pause_briefly();
  }
  if (!rm.ok()) *why = rm.error().message;
  return rm.ok();
}

}  // namespace

Result<std::string> CgroupThrottle::undo_place(const ThrottleEntry& e, ThrottlePlace& p) {
  const std::string prefix = v2() ? "" : p.hierarchy + ": ";
  const std::string here = dir_of(p.hierarchy, p.original), group_dir = dir_of(p.hierarchy, p.group);
  std::vector<std::string> notes;
  switch (p.mode) {
    case ThrottlePlace::Mode::Limit: {
      if (!ops().status(group_dir).ok()) {
        // It exited (or was moved out) and its cgroup went with it.
        p.saved.clear();
        notes.push_back(p.group + " was removed meanwhile: nothing to restore");
        break;
      }
      std::vector<std::string> done;
      auto r = restore_saved(p, "", &done);
      if (!r.ok()) {
        spdlog::warn("throttle ({}): {}", name(), r.error().message);
        notes.push_back("could not restore every value in " + p.group + ": " + r.error().message);
      }
      if (!done.empty()) notes.push_back("restored " + list(done, "", ", ") + " in " + p.group);
      break;
    }
    case ThrottlePlace::Mode::Child: {
      auto pids = ops().pids(group_dir);
      bool main_there = pids.ok() && std::find(pids->begin(), pids->end(), pid_t(e.key.tgid)) != pids->end();
      // Back to its cgroup, or the nearest ancestor still there: only a group
      // of the previous design (at the root) can outlive it, since a v1
      // cgroup with a child group of ours cannot be removed.
      std::string back = p.original;
      while (back != "/" && !ops().status(dir_of(p.hierarchy, back)).ok()) back = parent_path(back);
      std::string why;
      auto removed = empty_and_remove(ops(), group_dir, dir_of(p.hierarchy, back), &why);
      if (!removed.ok()) return removed.error();
      notes.push_back(main_there ? "moved back to " + back + (back == p.original ? "" : " (" + p.original + " is gone)")
                                 : "pid " + std::to_string(e.key.tgid) + " had exited or left " + p.group);
      notes.push_back(*removed ? "removed " + p.group : "could not remove " + p.group + ": " + why);
      break;
    }
    case ThrottlePlace::Mode::Leaf: {
      const std::string leaf_dir = dir_of(p.hierarchy, p.leaf);
      std::vector<std::string> mine;  // controllers this place enabled in its cgroup
      for (const auto& [path, c] : p.enabled)
        if (path == p.original) mine.push_back(c);
      // The cgroup takes its processes back only once it hands no controller
      // down: not while another throttle lives below it, nor when someone
      // else enabled one since.
      bool dissolve = !other_below(e.key, p.hierarchy, p.original);
      if (dissolve && !mine.empty()) {
        if (auto r = ops().write(here + "/cgroup.subtree_control", list(mine, "-")); !r.ok()) {
          dissolve = false;
          notes.push_back("could not disable " + list(mine, "") + " in " + p.original + ": " + r.error().message);
        } else {
          p.enabled.erase(std::remove_if(p.enabled.begin(), p.enabled.end(),
                                         [&](const auto& pc) { return pc.first == p.original; }),
                          p.enabled.end());
          save();
        }
      }
      if (dissolve) {
        auto left = ops().read(here + "/cgroup.subtree_control");
        if (left.ok() && !trim(*left).empty()) {
          dissolve = false;
          notes.push_back(p.original + " still hands " + std::string(trim(*left)) + " down");
        }
      }
      std::string why_group, why_leaf;
      if (dissolve) {
        // Everyone back into the cgroup they shared, the leaf's processes too.
        auto a = empty_and_remove(ops(), group_dir, here, &why_group);
        if (!a.ok()) return a.error();
        auto b = empty_and_remove(ops(), leaf_dir, here, &why_leaf);
        if (!b.ok()) return b.error();
        notes.push_back("moved back to " + p.original + " with the processes of " + p.leaf);
        notes.push_back(*a && *b ? "removed " + p.group + " and " + p.leaf
                                 : "could not remove " + p.group + " or " + p.leaf + ": " + why_group + why_leaf);
      } else {
        // The cgroup keeps its leaf, and this process joins its old
        // companions there.
        if (auto r = ops().make_group(leaf_dir); !r.ok()) return r.error();
        auto a = empty_and_remove(ops(), group_dir, leaf_dir, &why_group);
        if (!a.ok()) return a.error();
        notes.push_back("moved back among the other processes of " + p.original + " in " + p.leaf +
                        (other_below(e.key, p.hierarchy, p.original) ? " (another throttle still lives in " +
                                                                           p.original + ")"
                                                                     : ""));
        if (!*a) notes.push_back("could not remove " + p.group + ": " + why_group);
      }
      break;
    }
  }
  notes.push_back(release_enabled(e, p));
  std::string out;
  for (const auto& n : notes)
    if (!n.empty()) out += (out.empty() ? prefix : ", ") + n;
  return out;
}

std::string CgroupThrottle::release_enabled(const ThrottleEntry& e, ThrottlePlace& p) {
  std::vector<std::string> notes;
  while (!p.enabled.empty()) {
    auto [path, c] = p.enabled.back();
    p.enabled.pop_back();
    if (ThrottlePlace* other = other_below(e.key, p.hierarchy, path)) {
      // Still needed below: the other throttle undoes it when it goes.
      other->enabled.insert(other->enabled.begin(), {path, c});
    } else if (auto r = ops().write(dir_of(p.hierarchy, path) + "/cgroup.subtree_control", "-" + c); r.ok()) {
      notes.push_back("disabled " + c + " in " + path);
    } else {
      // A group below uses it now (EBUSY): it stays, as it would have for them.
      notes.push_back("left " + c + " enabled in " + path + ": " + r.error().message);
    }
    save();
  }
  return list(notes, "", ", ");
}

}  // namespace fp
