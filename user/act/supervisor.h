// The [[service]]s faultprobed starts and keeps running: restart policy with
// exponential backoff, a crash-loop limit, asynchronous restarts (SIGTERM,
// grace, SIGKILL), and restore from checkpoints (application-assisted or CRIU).
//
// Single-threaded: the daemon calls configure/tick/restart/status from its
// loop. All time comes from the Clock and every process side effect goes
// through the Spawner, so unit tests run it against fakes.
#pragma once

#include <sys/types.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "act/action.h"
#include "act/action_worker.h"
#include "act/checkpoint.h"
#include "act/checkpoint_trust.h"
#include "act/clock.h"
#include "act/restore_choice.h"
#include "act/spawner.h"
#include "config/config.h"

namespace fp {

struct SupervisorEvent {
  enum class Kind {
    Started,           // pid: the new process; detail: "restored from PATH" when it was
    StartFailed,       // detail: why (spawn error)
    Exited,            // pid, wait_status: an exit faultprobe did not ask for
    Restarting,        // delay_ms: the backoff before the next start
    CrashLoopTripped,  // detail: "N failures in 60s"; the service stays down
    Stopped,           // pid: a stop faultprobe asked for has completed
    RestoreFailed,     // detail: why; a plain start follows
    Checkpointed,      // detail: the new CRIU image directory
    CheckpointFailed,  // detail: why
  };
  Kind kind = Kind::Started;
  std::string service;
  pid_t pid = 0;
  int wait_status = 0;
  uint64_t delay_ms = 0;
  std::string detail;
  // Started, RestoreFailed after a restore was asked for: where the start
  // came from ("newest", "older", "clean"), "" otherwise.
  std::string restore_source;
};
const char* supervisor_event_name(SupervisorEvent::Kind k);
// One line for logs: "service web: exited (killed by SIGSEGV)".
std::string describe(const SupervisorEvent& e);

struct ServiceStatus {
  std::string name;
  std::string state;  // "running", "starting", "backoff", "stopping", "failed", "stopped"
  pid_t pid = 0;      // 0 when not running
  ProcKey key;
  uint32_t restarts = 0;            // starts after the first
  uint32_t failures_in_window = 0;  // counted towards crash_loop_limit
  std::string last_exit;            // "killed by SIGSEGV", "" before any exit
  std::string checkpoint_backend;   // "none", "app", "criu"
  std::string last_checkpoint;      // newest complete checkpoint / CRIU image, "" if none
  // Checkpoints a restore skips: taken while a fault was open on the service,
  // or one that brought the fault back (and every newer one).
  std::vector<std::string> suspect_checkpoints;
  std::optional<CriuStatus> criu;   // for criu services: whether CRIU works here, and why not
};

struct SupervisorOptions {
  std::string log_dir = "/var/log/faultprobe";  // stdout+stderr of each service: <log_dir>/<name>.log
  // The probe's start time of a fresh pid (process_start_ns); 0 when unset.
  std::function<uint64_t(pid_t)> start_of;
  // CRIU, probed by the caller (criu->probe()); nullptr = no CRIU backend.
  CriuBackend* criu = nullptr;
  // Where CRIU dumps and restores, and a slow spawner's starts and exit
  // status reads run, off the loop (act/action_worker.h); nullptr: on the
  // loop (unit tests). The daemon drains it before tick().
  ActionWorker* worker = nullptr;
  // Checks the pid a CRIU restore.pid names before it is adopted (and later
  // signalled): started since `restore_began_ns`, running `command0`.
  std::function<Result<void>(pid_t pid, uint64_t restore_began_ns, const std::string& command0)> verify_restored =
      [](pid_t pid, uint64_t began, const std::string& command0) {
        return verify_restored_process(pid, began, command0);
      };
  std::function<void(const SupervisorEvent&)> on_event;
};

class Supervisor {
 public:
  Supervisor(Clock& clock, Spawner& spawner, SupervisorOptions options = {});
  ~Supervisor();  // releases pidfds; does not stop services (stop_all does)
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  void set_event_callback(std::function<void(const SupervisorEvent&)> cb) { opts_.on_event = std::move(cb); }

  // The first call starts every service. Later calls (reload): new services
  // start, removed ones stop, changed ones restart with the new config,
  // unchanged ones are left alone.
  void configure(const std::vector<ServiceConfig>& services);

  // Reaps exits, restarts after backoff, escalates stops to SIGKILL after the
  // grace, runs CRIU dumps that are due. Call every sample interval.
  //
  // A start that may block (a CRIU restore, a spawner that is slow(): systemd)
  // runs on the worker: the service is "starting" until its result is applied.
  // A restore that fails or times out falls to the next rung in the same
  // start: an older checkpoint, then a clean start (RestoreFailed says why,
  // Started which). A start that fails (systemd-run's timeout included)
  // counts towards the crash-loop limit.
  void tick(uint64_t now_ns);

  // Asynchronous: SIGTERM now, SIGKILL once stop_grace passed (in tick), then
  // a start (when from_checkpoint: from the checkpoint RestoreChoice picks,
  // named with its source in the outcome). A service in backoff or stopped
  // starts at once; a failed (crash-looped) one is skipped.
  ActionOutcome restart(const std::string& name, bool from_checkpoint, bool dry_run);

  // The services with a fault open on their running process now (the daemon
  // says so every tick): checkpoints they take meanwhile are suspect.
  void set_faulty(const std::set<std::string>& names);
  // The recovery check's verdict on the last restore of `name`. Not held:
  // what the next restore falls back to (an older checkpoint, then a clean
  // start), or nullopt when there is nothing left to fall back to.
  std::optional<std::string> restore_verdict(const std::string& name, bool held);

  // The service whose main process is `pid`, or was until its last exit (the
  // handler acts on a crash after the process is gone).
  std::optional<std::string> service_of(uint32_t pid) const;
  std::vector<ServiceStatus> status() const;

  // Shutdown: SIGTERM to all, wait up to each grace (real time, blocking),
  // SIGKILL what is left, reap.
  void stop_all();

 private:
  // What happens when a stop faultprobe asked for completes.
  enum class After { Nothing, Start, StartFromCheckpoint, Replace, Remove };
  enum class State { Running, Starting, Backoff, Stopping, Failed, Stopped };
  struct Service {
    ServiceConfig cfg;
    State state = State::Stopped;
    pid_t pid = 0;  // 0: no process
    pid_t last_pid = 0;  // the previous process, after it exited (a crash fault names it)
    int pidfd = -1;
    std::string unit;        // its transient systemd unit (Spawned::unit), "" when none
    uint64_t start_seq = 0;  // which start a result from the worker belongs to
    ProcKey key;
    uint64_t started_ns = 0;
    uint32_t starts = 0;
    std::vector<uint64_t> failures;  // times of failures inside crash_loop_window
    bool tripped = false;            // the crash-loop limit stopped it
    uint64_t backoff_ns = 0;         // the next backoff delay
    uint64_t next_start_ns = 0;      // in Backoff: when to start
    bool restore_on_start = false;   // the pending automatic start is after a crash
    std::string last_exit;
    uint64_t kill_at_ns = 0;  // in Stopping: when SIGTERM turns into SIGKILL
    bool killed = false;
    After after = After::Nothing;
    std::optional<ServiceConfig> replacement;  // After::Replace
    bool remove = false;                       // After::Remove done: erase at the end of tick
    uint64_t next_dump_ns = 0;
    std::string last_image;
    RestoreChoice choice;  // which checkpoint a restore starts from (suspect marks, fallback)
  };

  // A start decided on the loop (trust checks, which checkpoint, the spec),
  // then run where it may block: run_start() touches no Service.
  struct StartPlan {
    std::string name, command0;
    SpawnSpec spec;                             // the plain start, first or after every restore failed
    std::vector<RestoreChoice::Pick> restores;  // CRIU images to try in order (the fallback's rungs)
    std::string detail;                         // Started's detail for the plain start
    std::string source;                         // restore_source of the plain start ("" when none was asked)
  };
  struct StartResult {
    Result<Spawned> proc = Error{ECANCELED, "not started"};
    std::optional<RestoreChoice::Pick> restored;  // the image it came from; nullopt: the plain start
    std::vector<std::string> restore_errors;      // each failed restore, with what came next
  };

  std::vector<CheckpointEntry> checkpoints_of(const Service& s) const;

  void start(Service& s, uint64_t now, bool from_checkpoint);
  StartPlan plan_start(Service& s, bool from_checkpoint);
  StartResult run_start(const StartPlan& plan);
  void start_done(Service& s, uint64_t now, const StartPlan& plan, StartResult r);
  // The main process ended: with its status, or (kUnknownWaitStatus from a
  // transient unit) once the spawner's exit_status() read it, off the loop.
  void ended(Service& s, uint64_t now, int status);
  void begin_stop(Service& s, uint64_t now, After after);
  void on_exit(Service& s, uint64_t now, int status);
  void on_failure(Service& s, uint64_t now);
  void schedule_restart(Service& s, uint64_t now);
  void maybe_dump(Service& s, uint64_t now);
  void dump_done(const std::string& name, pid_t pid, const Result<std::string>& r);
  // The worker's target for a service's dumps, starts and exit reads: one at a time per service.
  static std::string worker_target(const std::string& name) { return "service " + name; }
  SpawnSpec spec_for(const Service& s, const std::optional<std::string>& restore_from) const;
  void emit(SupervisorEvent e);

  Clock& clock_;
  Spawner& spawner_;
  SupervisorOptions opts_;
  std::map<std::string, Service> services_;
};

}  // namespace fp
