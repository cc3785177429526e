#include "act/process_group.h"

#include <csignal>
#include <set>

#include <spdlog/spdlog.h>

#include "act/spawn.h"

namespace fp {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Bounds: a group deeper or faster than this is acted on as far as it was found.
constexpr int kMaxRounds = 64;
constexpr std::chrono::seconds kStopBudget{10};

// What a member reparented away from the group looks like.
struct Signature {
  std::set<std::string> comms;
  std::set<pid_t> sessions;
  std::set<pid_t> reapers{1};  // init, and the parents of members that are not members
  uint64_t since_ticks = UINT64_MAX;  // the oldest seed's start
};

std::string join_comms(const std::set<std::string>& comms) {
  std::string out;
  for (const auto& c : comms) out += (out.empty() ? "" : ", ") + c;
  return out;
}

}  // namespace

Result<StoppedGroup> stop_group(const std::vector<ProcKey>& seeds, const std::string& proc_root,
                                const RefuseFn& refuse) {
  StoppedGroup g;
  std::set<pid_t> member_pids, skipped_pids;
  Signature sig;
  auto take = [&](const ProcKey& key, const ProcStat& st) {
    const pid_t pid = pid_t(key.tgid);
    if (member_pids.count(pid) != 0 || skipped_pids.count(pid) != 0) return false;
    auto h = ProcessHandle::open(key, proc_root);
    if (!h) return false;  // exited (or replaced) since it was seen
    if (refuse) {
      if (auto why = refuse(key, st.comm)) {
        skipped_pids.insert(pid);
        g.skipped.push_back("pid " + std::to_string(pid) + " (" + *why + ")");
        return false;
      }
    }
    if (!h->signal(SIGSTOP)) return false;
    member_pids.insert(pid);
    sig.comms.insert(st.comm);
    sig.sessions.insert(st.session);
    g.members.push_back(std::move(h.value()));
    return true;
  };

  for (const ProcKey& key : seeds) {
    auto st = read_proc_stat(pid_t(key.tgid), proc_root);
    if (!st || !same_start(key.start_ns, start_ticks_to_mono_ns(st->starttime_ticks))) continue;
    sig.since_ticks = std::min(sig.since_ticks, st->starttime_ticks);
    take(key, *st);
  }
  if (g.members.empty() && g.skipped.empty()) return Error{ESRCH, "no member of the group is alive"};

  const auto deadline = steady_clock::now() + kStopBudget;
  for (g.rounds = 1; g.rounds <= kMaxRounds; ++g.rounds) {
    wait_stopped(g.members, proc_root);
    const std::map<pid_t, ProcStat> procs = scan_processes(proc_root);
    for (pid_t pid : member_pids)
      if (auto it = procs.find(pid); it != procs.end() && member_pids.count(it->second.ppid) == 0)
        sig.reapers.insert(it->second.ppid);
    bool grew = false;
    for (const auto& [pid, st] : procs) {
      if (member_pids.count(pid) != 0 || skipped_pids.count(pid) != 0) continue;
      const bool child = member_pids.count(st.ppid) != 0;
      const bool orphan = !child && sig.reapers.count(st.ppid) != 0 && sig.comms.count(st.comm) != 0 &&
                          sig.sessions.count(st.session) != 0 && st.starttime_ticks >= sig.since_ticks;
      if (!child && !orphan) continue;
      if (take(ProcKey{uint32_t(pid), start_ticks_to_mono_ns(st.starttime_ticks)}, st)) grew = true;
    }
    if (!grew) {
      g.converged = true;
      break;
    }
    if (steady_clock::now() >= deadline) break;
  }
  spdlog::debug("stop_group: {} stopped in {} round(s){}", g.members.size(), g.rounds,
                g.converged ? "" : " (not converged)");
  return g;
}

void continue_group(StoppedGroup& g) {
  for (auto& m : g.members) (void)m.signal(SIGCONT);
}

Result<std::string> kill_group(const std::vector<ProcKey>& seeds, const std::string& proc_root,
                               const RefuseFn& refuse) {
  auto stopped = stop_group(seeds, proc_root, refuse);
  if (!stopped) return stopped.error();
  StoppedGroup& g = *stopped;
  if (g.members.empty()) {
    std::string why = "refused: every live member of the group is protected:";
    for (const auto& s : g.skipped) why += " " + s;
    return Error{EPERM, why};
  }
  std::set<std::string> comms;
  std::vector<std::string> failed;
  for (auto& m : g.members) {
    if (auto st = read_proc_stat(pid_t(m.key().tgid), proc_root)) comms.insert(st->comm);
    if (auto r = m.signal(SIGKILL); !r && r.error().code != ESRCH) failed.push_back(r.error().message);
  }
  const auto deadline = steady_clock::now() + ProcessHandle::kKillWait;
  std::vector<pid_t> survivors;
  for (auto& m : g.members) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
    if (!m.wait_exit(std::max(left, milliseconds(0)))) survivors.push_back(pid_t(m.key().tgid));
  }
  std::string detail = "stopped and killed " + std::to_string(g.members.size() - survivors.size()) +
                       " process(es) of the group (" + join_comms(comms) + ") in " + std::to_string(g.rounds) +
                       " round(s)";
  if (!g.converged) detail += "; still finding new members when it gave up";
  if (!g.skipped.empty()) {
    detail += "; left alone:";
    for (const auto& s : g.skipped) detail += " " + s;
  }
  if (!survivors.empty()) {
    detail += "; still running after SIGKILL:";
    for (pid_t p : survivors) detail += " " + std::to_string(p);
  }
  for (const auto& f : failed) detail += "; " + f;
  spdlog::debug("kill_group: {}", detail);
  return detail;
}

std::string describe_group(const std::vector<ProcKey>& seeds, const std::string& proc_root) {
  size_t alive = 0;
  std::set<std::string> comms;
  for (const ProcKey& k : seeds) {
    auto st = read_proc_stat(pid_t(k.tgid), proc_root);
    if (!st || !same_start(k.start_ns, start_ticks_to_mono_ns(st->starttime_ticks))) continue;
    ++alive;
    comms.insert(st->comm);
  }
  return std::to_string(alive) + " live process(es)" + (comms.empty() ? "" : " (" + join_comms(comms) + ")");
}

}  // namespace fp
