// Acting on a fork group (fork_bomb's: replicas of one program whose
// generations may have reparented to init) as a whole, against members that
// keep forking: SIGSTOP rounds until a scan of /proc finds no member left
// running, then the action; every signal through a verified pidfd, every
// member through the safety check.
//
// Why SIGSTOP rounds and not the cgroup freezer: a group is rarely a whole
// cgroup (a bomb typed in a login shell shares that shell's cgroup; on cgroup
// v1 the freezer is a hierarchy of its own that a bomb is seldom alone in),
// and freezing a cgroup with other processes in it would stop innocent ones.
// A stopped process cannot fork, and each round stops what the last one
// could not see yet (a child forked just before its parent stopped, a
// generation reparented to the reaper), so the running set shrinks to none.
//
// Members: the seeds (the detector's list, each checked against its start
// time), the children of members, and processes reparented to a member's
// reaper that have a member's comm and session and started no earlier than
// the oldest seed (a generation whose parent exited before it was stopped).
#pragma once

#include <string>
#include <vector>

#include "act/process.h"

namespace fp {

struct StoppedGroup {
  std::vector<ProcessHandle> members;  // stopped, in the order found
  std::vector<std::string> skipped;    // "pid N (why)": refused by the safety check, left running
  int rounds = 0;
  bool converged = false;  // a scan of a fully stopped group found nobody new
};

// Stops the group. Fails only when none of the seeds is alive.
Result<StoppedGroup> stop_group(const std::vector<ProcKey>& seeds, const std::string& proc_root = "/proc",
                                const RefuseFn& refuse = nullptr);
// SIGCONT to every member (after a throttle moved them where they cannot harm).
void continue_group(StoppedGroup& g);
// stop_group, then SIGKILL to every member, waiting for them to die. The
// detail says how many died, which were left alone and which outlived SIGKILL.
Result<std::string> kill_group(const std::vector<ProcKey>& seeds, const std::string& proc_root = "/proc",
                               const RefuseFn& refuse = nullptr);
// "12 processes (bash, session 4711)": for details and dry runs.
std::string describe_group(const std::vector<ProcKey>& seeds, const std::string& proc_root = "/proc");

}  // namespace fp
