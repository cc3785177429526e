// The cgroup throttle backends. CgroupThrottle holds what v1 and v2 share
// (the table, the places, the state file); the two subclasses know their
// hierarchies and control files.
//
// A throttle stays in place, under every limit the process already had: in
// each hierarchy a limit needs (v2: one; v1: the cpu, memory, blkio, pids
// mounts, where the process's path may differ) it is throttled
//   - in its own cgroup, when it is alone there: the limits are written into
//     that cgroup and the old values saved (Limit);
//   - else in a new child of its cgroup, faultprobe-p<tgid>-<start> (Child):
//     v1, and the v2 root. Limits are hierarchical, so its cgroup's and every
//     ancestor's still apply;
//   - else (v2, sharing a cgroup, which may hand controllers to its children
//     only while no process lives in it) the cgroup's other processes go to
//     a child faultprobe-leaf and this one to its own child (Leaf). All stay
//     inside their cgroup (its limits, its systemd unit, its container).
// No limit is raised: a value already at or below the throttle's is left.
// A process in a subtree delegated to a user (a group or its cgroup.procs
// owned by anyone but us) is refused: the user could move it out of any group
// we make there, or rewrite a limit there.
// Each second every throttle is looked at (cgroup_drift.cpp): a limit file that
// no longer holds what was written, or a process that left the group, is put
// back once and logged; when it goes again, that is an evasion (the handler
// escalates at once), and it is put back again.
// Undo restores what was there: the old values (Limit), the process's cgroup
// (Child, Leaf: with the processes it forked meanwhile; the others go back
// from the leaf), the controllers enabled on the way (unless another throttle
// still needs them), and removes the groups it made.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "act/cgroup.h"
#include "act/cgroup_ops.h"
#include "act/throttle.h"
#include "act/throttle_state.h"

namespace fp {

// Where a cgroup backend reads /proc and keeps its table, and the file
// operations it uses (nullptr: the real cgroupfs).
struct CgroupThrottleEnv {
  std::string proc_root = "/proc";
  std::string state_path;  // "" = not persisted
  CgroupOps* ops = nullptr;
};

// One control-file write of a limit, and what writing back restores the value
// it replaces.
struct ControlWrite {
  std::string controller;
  std::string file;
  std::string device;  // per-device files ("io.max"): the "MAJ:MIN" the line is for
  std::string value;
  std::string restore;
};

class CgroupThrottle : public ThrottleBackend {
 public:
  Result<std::string> throttle(const ProcKey& key, const ThrottleLimits& l) override;
  Result<std::string> add_members(const ProcKey& key, const std::vector<pid_t>& pids) override;
  bool members_left(const ProcKey& key) const override;
  Result<std::string> release(const ProcKey& key) override;
  bool throttled(const ProcKey& key) const override { return entries_.count(key) > 0; }
  std::vector<ProcKey> throttled_keys() const override;
  void release_all() override;
  void tick(uint64_t now_ns) override;
  uint64_t next_deadline_ns() const override;
  std::vector<ThrottleEvasion> take_evasions() override;
  // Throttles found undone and put back (the first time for each process).
  uint64_t reapplied() const { return reapplied_total_; }

  // The devices ("MAJ:MIN") an io limit is written for. Until set, the whole
  // disks default_io_devices() finds at the first io throttle.
  void set_io_devices(std::vector<std::string> devices) { io_devices_ = std::move(devices); }

 protected:
  explicit CgroupThrottle(CgroupThrottleEnv env);
  // Reads the state file: keeps the entries whose process is still where the
  // throttle put it, undoes the others. Subclass constructors call it once
  // their hierarchies are known.
  void load_state();

  // The controllers a limit needs ("cpu", "memory", "io"/"blkio", "pids").
  virtual std::vector<std::string> controllers_for(const ThrottleLimits& l) const = 0;
  // The hierarchy a controller is in: "v2", or the v1 mount's first
  // controller (co-mounted controllers share one place).
  virtual std::string hierarchy_of(const std::string& controller) const = 0;
  // Every hierarchy this backend can use.
  virtual std::vector<std::string> all_hierarchies() const = 0;
  virtual std::string mount_of(const std::string& hierarchy) const = 0;
  virtual std::optional<std::string> original_in(const ProcCgroups& pc, const std::string& hierarchy) const = 0;
  virtual bool v2() const = 0;
  // The writes that put l's limit for `controller` on the group at `path`.
  // before(file, device): the value before any write of ours (the saved one,
  // else the file's current content). Nothing when the value in force is
  // already at or below the limit.
  using BeforeFn = std::function<std::string(const std::string& file, const std::string& device)>;
  virtual std::vector<ControlWrite> writes_for(const std::string& controller, const ThrottleLimits& l,
                                               const std::vector<std::string>& devices, const std::string& path,
                                               const BeforeFn& before) = 0;
  // A failed limit write, explained (v1: a memory limit below the usage).
  virtual Error explain(const std::string& dir, const ControlWrite& w, Error err) {
    (void)dir;
    (void)w;
    return err;
  }
  // A Child group was made, the process is not in it yet (v1 memory: move its charges along).
  virtual void before_move(const std::string& hierarchy, const std::string& group_dir) {
    (void)hierarchy;
    (void)group_dir;
  }

  CgroupOps& ops() const { return *ops_; }
  // The lowest value `file` holds in the ancestors of `path` (the
  // hierarchical limit above the group); kUnlimited when none has one.
  uint64_t ancestors_limit(const std::string& hierarchy, const std::string& path, const std::string& file) const;
  std::string dir_of(const std::string& hierarchy, const std::string& path) const {
    return path == "/" ? mount_of(hierarchy) : mount_of(hierarchy) + path;
  }

 private:
  // cgroup_place.cpp: choosing and making a place, and undoing one.
  // Picks the mode for p (p.hierarchy, p.original set), makes its groups and
  // moves processes as the mode needs; says how, for the action's detail.
  Result<std::string> enter_place(ThrottleEntry& e, ThrottlePlace& p, const std::vector<std::string>& controllers);
  // v2: makes the controllers usable in p's group (enabling them on the way down).
  Result<void> prepare_controllers(ThrottlePlace& p, const std::vector<std::string>& controllers);
  Result<void> refuse_delegated(const ProcKey& key, const std::string& hierarchy, const std::string& path);
  Result<void> make_available(ThrottlePlace& p, const std::string& path, const std::vector<std::string>& controllers);
  Result<void> enable_in(ThrottlePlace& p, const std::string& path, const std::vector<std::string>& controllers);
  Result<size_t> empty_into_leaf(ThrottlePlace& p, const std::vector<std::string>& controllers);
  Result<std::string> undo_place(const ThrottleEntry& e, ThrottlePlace& p);
  // Gives the (cgroup, controller) pairs p enabled to another throttle below
  // that cgroup, or disables them (the lowest first).
  std::string release_enabled(const ThrottleEntry& e, ThrottlePlace& p);
  // Another throttle's place below `path` in `hierarchy`, or nullptr.
  ThrottlePlace* other_below(const ProcKey& self, const std::string& hierarchy, const std::string& path);

  // cgroup_throttle.cpp
  // Undoes e's places (the last first), removing each one undone from e.
  // Fails (and e should be kept) when a process could not be put back.
  Result<std::string> undo(ThrottleEntry& e);
  // Writes l's limits into every place of e, and lifts the ones l dropped;
  // says what it wrote, per place.
  Result<std::vector<std::string>> apply_limits(ThrottleEntry& e, const ThrottleLimits& l, const std::vector<std::string>& devices);
  // writes_for's `before` in place p: the saved value, else the file's content.
  BeforeFn before_of(const ThrottlePlace& p, const std::string& controller) const;
  // Writes back p's saved values of `controller` ("" = all), the last first.
  Result<void> restore_saved(ThrottlePlace& p, const std::string& controller, std::vector<std::string>* done);
  void remove_legacy_groups();
  void save() const;

  // cgroup_drift.cpp
  // What of e no longer holds ("" when all of it does, or its process is gone).
  std::string drift_of(const ThrottleEntry& e);
  // Moves the process back into its groups and writes its limits again.
  Result<void> reapply(ThrottleEntry& e);
  static constexpr uint64_t kDriftCheckNs = 1'000'000'000;
  uint64_t next_check_ns_ = 0;
  std::map<ProcKey, unsigned> drifts_;  // times each throttle was found undone
  std::vector<ThrottleEvasion> evasions_;
  uint64_t reapplied_total_ = 0;

  std::string proc_root_;
  std::string state_path_;
  CgroupOps* ops_;
  std::optional<std::vector<std::string>> io_devices_;
  std::map<ProcKey, ThrottleEntry> entries_;
};

// cgroup v2: cpu.max, memory.high, io.max, pids.max.
class CgroupV2Throttle : public CgroupThrottle {
 public:
  // controllers: what <root>/cgroup.controllers offers (CgroupLayout::v2_controllers).
  CgroupV2Throttle(std::string root, std::vector<std::string> controllers, CgroupThrottleEnv env = {});
  const char* name() const override { return "cgroup2"; }
  bool supports(const ThrottleLimits& l, std::string* why) const override;

 protected:
  std::vector<std::string> controllers_for(const ThrottleLimits& l) const override;
  std::string hierarchy_of(const std::string&) const override { return "v2"; }
  std::vector<std::string> all_hierarchies() const override { return {"v2"}; }
  std::string mount_of(const std::string&) const override { return root_; }
  std::optional<std::string> original_in(const ProcCgroups& pc, const std::string&) const override { return pc.v2; }
  bool v2() const override { return true; }
  std::vector<ControlWrite> writes_for(const std::string& controller, const ThrottleLimits& l,
                                       const std::vector<std::string>& devices, const std::string& path,
                                       const BeforeFn& before) override;

 private:
  std::string root_;
  std::vector<std::string> controllers_;
};

// cgroup v1: the cpu (cfs quota), memory (limit_in_bytes), blkio
// (throttle.*_bps_device) and pids (pids.max) hierarchies, each with the
// process's own path in it.
class CgroupV1Throttle : public CgroupThrottle {
 public:
  // v1: controller -> mount point (CgroupLayout::v1).
  explicit CgroupV1Throttle(std::map<std::string, std::string> v1, CgroupThrottleEnv env = {});
  const char* name() const override { return "cgroup1"; }
  bool supports(const ThrottleLimits& l, std::string* why) const override;

 protected:
  std::vector<std::string> controllers_for(const ThrottleLimits& l) const override;
  std::string hierarchy_of(const std::string& controller) const override;
  std::vector<std::string> all_hierarchies() const override;
  std::string mount_of(const std::string& hierarchy) const override;
  std::optional<std::string> original_in(const ProcCgroups& pc, const std::string& hierarchy) const override;
  bool v2() const override { return false; }
  std::vector<ControlWrite> writes_for(const std::string& controller, const ThrottleLimits& l,
                                       const std::vector<std::string>& devices, const std::string& path,
                                       const BeforeFn& before) override;
  Error explain(const std::string& dir, const ControlWrite& w, Error err) override;
  void before_move(const std::string& hierarchy, const std::string& group_dir) override;

 private:
  std::map<std::string, std::string> v1_;
};

}  // namespace fp
