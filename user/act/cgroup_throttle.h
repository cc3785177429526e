// The cgroup throttle backends. CgroupThrottle holds what v1 and v2 share
// (the table, moving a process in and back out, the state file); the two
// subclasses know their hierarchies and control files.
//
// Group: <hierarchy root>/faultprobe/p<tgid>-<start_ns> (in every v1
// hierarchy a limit needs, or once in v2). Release moves every process listed
// in the group (the throttled one and any children it forked meanwhile) back
// to the throttled process's original cgroup in that hierarchy (or the
// nearest ancestor still there), then removes the group.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "act/cgroup.h"
#include "act/throttle.h"
#include "act/throttle_state.h"

namespace fp {

class CgroupThrottle : public ThrottleBackend {
 public:
  Result<std::string> throttle(const ProcKey& key, const ThrottleLimits& l) override;
  Result<std::string> throttle_group(const ProcKey& key, pid_t owner, const std::vector<pid_t>& pids,
                                     const ThrottleLimits& l) override;
  bool members_left(const ProcKey& key) const override;
  Result<std::string> release(const ProcKey& key) override;
  bool throttled(const ProcKey& key) const override { return entries_.count(key) > 0; }
  std::vector<ProcKey> throttled_keys() const override;
  void release_all() override;

  // The devices ("MAJ:MIN") an io limit is written for. Until set, the whole
  // disks default_io_devices() finds at the first io throttle.
  void set_io_devices(std::vector<std::string> devices) { io_devices_ = std::move(devices); }

 protected:
  CgroupThrottle(std::string proc_root, std::string state_path);
  // Reads the state file: keeps the entries whose process is still in its
  // group, undoes the others (their groups are removed), removes empty
  // groups nobody recorded. Subclass constructors call it once their
  // hierarchies are known.
  void load_state();

  // The hierarchies (ThrottleEntry::original keys) the limits need.
  virtual std::vector<std::string> hierarchies_for(const ThrottleLimits& l) const = 0;
  // Every hierarchy this backend can use, for the sweep of leftover groups.
  virtual std::vector<std::string> all_hierarchies() const = 0;
  virtual std::string mount_of(const std::string& hierarchy) const = 0;
  virtual std::optional<std::string> original_in(const ProcCgroups& pc, const std::string& hierarchy) const = 0;
  // Before any group is created (v2: enable the controllers for the children).
  virtual Result<void> prepare_parents(const ThrottleLimits& l) {
    (void)l;
    return {};
  }
  // After the group is created, before the process moves in.
  virtual void before_move(const std::string& hierarchy, const std::string& group_dir) {
    (void)hierarchy;
    (void)group_dir;
  }
  // Writes the limits in `now` and lifts those only in `before`, appending
  // "file=value" for each write to done.
  virtual Result<void> write_limits(const std::string& group, const ThrottleLimits& now,
                                    const std::vector<std::string>& devices_now, const ThrottleLimits& before,
                                    const std::vector<std::string>& devices_before,
                                    std::vector<std::string>* done) = 0;

  std::string group_dir(const std::string& hierarchy, const std::string& group) const {
    return mount_of(hierarchy) + group;
  }

 private:
  // throttle() with the original cgroups read from, and the move made for, `owner`.
  Result<std::string> apply(const ProcKey& key, pid_t owner, const ThrottleLimits& l);
  // Moves everything in e's groups back and removes them. Fails (and the
  // entry should be kept) only when a process could not be moved back.
  Result<std::string> undo(const ThrottleEntry& e);
  void save() const;

  std::string proc_root_;
  std::string state_path_;
  std::optional<std::vector<std::string>> io_devices_;
  std::map<ProcKey, ThrottleEntry> entries_;
};

// cgroup v2: one group under <root>/faultprobe with cpu.max, memory.high,
// io.max, pids.max; the controllers a limit needs are enabled in
// <root>/cgroup.subtree_control and <root>/faultprobe/cgroup.subtree_control.
class CgroupV2Throttle : public CgroupThrottle {
 public:
  // controllers: what <root>/cgroup.controllers offers (CgroupLayout::v2_controllers).
  CgroupV2Throttle(std::string root, std::vector<std::string> controllers, std::string proc_root = "/proc",
                   std::string state_path = "");
  const char* name() const override { return "cgroup2"; }
  bool supports(const ThrottleLimits& l, std::string* why) const override;

 protected:
  std::vector<std::string> hierarchies_for(const ThrottleLimits&) const override { return {"v2"}; }
  std::vector<std::string> all_hierarchies() const override { return {"v2"}; }
  std::string mount_of(const std::string&) const override { return root_; }
  std::optional<std::string> original_in(const ProcCgroups& pc, const std::string&) const override { return pc.v2; }
  Result<void> prepare_parents(const ThrottleLimits& l) override;
  Result<void> write_limits(const std::string& group, const ThrottleLimits& now,
                            const std::vector<std::string>& devices_now, const ThrottleLimits& before,
                            const std::vector<std::string>& devices_before, std::vector<std::string>* done) override;

 private:
  std::string root_;
  std::vector<std::string> controllers_;
};

// cgroup v1: a group in each hierarchy a limit needs (cpu, memory, blkio,
// pids), each left and restored separately.
class CgroupV1Throttle : public CgroupThrottle {
 public:
  // v1: controller -> mount point (CgroupLayout::v1).
  explicit CgroupV1Throttle(std::map<std::string, std::string> v1, std::string proc_root = "/proc",
                            std::string state_path = "");
  const char* name() const override { return "cgroup1"; }
  bool supports(const ThrottleLimits& l, std::string* why) const override;

 protected:
  std::vector<std::string> hierarchies_for(const ThrottleLimits& l) const override;
  std::vector<std::string> all_hierarchies() const override;
  std::string mount_of(const std::string& hierarchy) const override;
  std::optional<std::string> original_in(const ProcCgroups& pc, const std::string& hierarchy) const override;
  void before_move(const std::string& hierarchy, const std::string& group_dir) override;
  Result<void> write_limits(const std::string& group, const ThrottleLimits& now,
                            const std::vector<std::string>& devices_now, const ThrottleLimits& before,
                            const std::vector<std::string>& devices_before, std::vector<std::string>* done) override;

 private:
  std::map<std::string, std::string> v1_;
};

}  // namespace fp
