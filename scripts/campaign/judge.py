"""Judging one injection from the daemon's own records: was a fault of the
injected class opened (detected), on the injected process (located), did the
policy's action run and take effect (handled), and was the process healthy
again (recovered)? Every "no" comes with the reason as the records give it.

Pure functions over lists of event-stream records (dicts as faultprobed
writes them, plus "_ns": their time in ns) and what the runner observed on
the host, so the unit tests feed them synthetic records."""


class Run:
    """One injection: its ground truth and, once judged, its outcome."""

    def __init__(self, row, cls, n, lane):
        self.row = row            # the table row ("cpu_runaway", "real:rt_spinner")
        self.cls = cls            # the fault class it must open
        self.n = n                # its number within the row
        self.lane = lane
        self.pids = set()         # ground truth: the culprit's pid(s)
        self.victims = set()      # processes that suffer (starvation, io_storm)
        self.cgroup = None        # a cgroup whose members are all culprits (a shell fork bomb)
        self.injected_ns = None   # wall-clock time of the injection (latency origin)
        self.first_index = 0      # the daemon's record count when it began
        self.end_ns = None
        self.handling = None      # ladder action types for a class with a policy, else None
        self.note = ""            # what the runner saw that the records cannot say
        # outcome
        self.fault = None
        self.detected = False
        self.located = False
        self.latency_ms = None
        self.handled = None       # None: no policy for it (n/a)
        self.recovered = None
        self.misses = []          # one line per "no"
        self.records = []         # the records kept for the results directory

    @property
    def name(self):
        return "%s#%d" % (self.row, self.n)

    def miss(self, what, why):
        self.misses.append("%s %s: %s" % (self.name, what, why))


def _is_fault(r, cls):
    return r.get("kind") == "fault" and r.get("class") == cls


def culprit_of(r, run):
    """Whether the record's culprit is the injection's (its pid, or a member of its cgroup)."""
    if r.get("pid") in run.pids:
        return True
    cg = r.get("cgroup") or ""
    return bool(run.cgroup) and (cg.rstrip("/").endswith("/" + run.cgroup))


def find_fault(records, run, claimed):
    """The fault this injection opened: the first of its class on its culprit;
    else the first of its class in its window that names no process another
    injection owns (`claimed`: pid -> run) -- detected, but blamed on someone
    else. Returns (record or None, located)."""
    stray = None
    for r in records:
        if not _is_fault(r, run.cls):
            continue
        if run.injected_ns is not None and r.get("_ns", 0) < run.injected_ns - 1_000_000_000:
            continue
        if culprit_of(r, run):
            return r, True
        owner = claimed.get(r.get("pid"))
        if stray is None and (owner is None or owner is run):
            stray = r
    return stray, False


def judge_detection(records, run, claimed):
    fault, located = find_fault(records, run, claimed)
    run.fault = fault
    run.detected = fault is not None
    run.located = located
    if fault is not None and run.injected_ns is not None:
        run.latency_ms = max(0.0, (fault["_ns"] - run.injected_ns) / 1e6)
    if fault is None:
        run.miss("not detected", explain_undetected(records, run))
    elif not located:
        run.miss("mislocated", "blamed pid %s (%s) instead of %s%s" % (
            fault.get("pid"), fault.get("comm"), "/".join(str(p) for p in sorted(run.pids)) or "?",
            " (cgroup %s)" % run.cgroup if run.cgroup else ""))
    return run


def explain_undetected(records, run):
    """'no cpu_runaway fault opened (faults meanwhile: ...)', from what the daemon did say."""
    mine = [r for r in records if r.get("kind") == "fault" and culprit_of(r, run)]
    others = [r for r in records if r.get("kind") == "fault" and not culprit_of(r, run)]
    why = "no %s fault opened" % run.cls
    if mine:
        why += "; on the culprit instead: " + ", ".join(sorted({r.get("class", "?") for r in mine}))
    if others:
        seen = ["%s pid %s (%s)" % (r.get("class"), r.get("pid"), r.get("comm")) for r in others[:4]]
        why += "; other faults meanwhile: " + ", ".join(seen) + (" ..." if len(others) > 4 else "")
    if run.note:
        why += "; " + run.note
    return why


def case_records(records, run, service=None):
    """The action and recovery records of this injection's case: on its
    culprit or on the replacements a restart/restore started (followed
    through new_pid and the service's `started` records after each action)."""
    pids = set(run.pids)
    out = []
    for r in records:
        kind = r.get("kind")
        if kind in ("action", "recovery") and r.get("class") == run.cls and r.get("pid") in pids:
            out.append(r)
            a = r.get("action") or {}
            if a.get("new_pid"):
                pids.add(a["new_pid"])
            if kind == "action" and a.get("type") in ("restore", "restart") and a.get("result") == "ok" and service:
                pids.update(_started_after(records, service, r["_ns"]))
        elif kind == "service" and service and r.get("service") == service and r.get("event") == "started" \
                and any(x.get("kind") == "action" for x in out):
            pids.add(r.get("pid"))
    return out, pids


def _started_after(records, service, t_ns):
    return {r.get("pid") for r in records if r.get("kind") == "service" and r.get("service") == service and
            r.get("event") == "started" and r.get("_ns", 0) >= t_ns - 1_000_000_000}


def judge_handling(records, run, obs, service=None):
    """P(R|F) and P(S|F) of one injection. `obs`: what the runner saw on the
    host -- throttle_share (the tightest CPU limit in force on the culprit
    while it was throttled, None if never), running (the service or process
    runs at the end), open_faults (faults of this class still open on it at
    the end), restored (the replacement resumed from a checkpoint, or a clean
    start the daemon chose), expect_share (the throttle's share)."""
    if run.handling is None:
        return run
    run.handled = False
    run.recovered = False
    if run.fault is None:
        run.miss("not handled", "no fault, nothing to handle")
        return run
    case, _ = case_records(records, run, service)
    actions = [r for r in case if r.get("kind") == "action" and r["action"].get("type") != "unthrottle"]
    recoveries = [r for r in case if r.get("kind") == "recovery"]
    taken = None
    for a in actions:
        act = a["action"]
        if act.get("result") != "ok" or act.get("type") not in run.handling:
            continue
        if act["type"] == "throttle":
            share = obs.get("throttle_share")
            if share is not None and share <= obs.get("expect_share", 1.0) * 1.05 + 1e-9:
                taken = a
                break
        elif act["type"] in ("restore", "restart"):
            # a process of the service started after it other than the one acted on
            # (run.pids holds the replacements too, once the runner claims them)
            # (the action's new_pid, or a start recorded after it: a start the action
            # makes at once is recorded before the action record, within its tick)
            if service is None or act.get("new_pid") or _started_after(records, service, a["_ns"]) - {a.get("pid")}:
                taken = a
                break
        else:
            taken = a
            break
    if taken is None:
        if not actions:
            run.miss("not handled", "no action record for the %s fault on pid %s" % (run.cls, run.fault.get("pid")))
        else:
            last = actions[-1]["action"]
            why = "%s %s: %s" % (last.get("type"), last.get("result"), last.get("detail"))
            if last.get("type") == "throttle" and last.get("result") == "ok":
                why += "; but the CPU limit in force on pid %s was %s" % (
                    run.fault.get("pid"), "none" if obs.get("throttle_share") is None else
                    "%.2f cores" % obs["throttle_share"])
            run.miss("not handled", why)
        return run
    run.handled = True

    final = recoveries[-1] if recoveries else None
    problems = []
    if final is None:
        problems.append("no recovery record after the %s" % taken["action"]["type"])
    elif not final["recovery"].get("recovered"):
        problems.append("the daemon's recovery check: %s" % final["recovery"].get("detail"))
    if not obs.get("running", True):
        problems.append("the process is not running at the end")
    if obs.get("open_faults"):
        problems.append("still open at the end: " + ", ".join(obs["open_faults"]))
    if obs.get("restored") is False:
        problems.append("the replacement did not resume from a checkpoint (its log: %s)" % obs.get("restore_log", "?"))
    if obs.get("unthrottled") is False:
        problems.append("the throttle was not undone")
    if problems:
        daemon_says = final is not None and final["recovery"].get("recovered")
        run.miss("not recovered", "; ".join(problems) + ("" if not daemon_says else
                                                          " (the daemon's own check said recovered)"))
    else:
        run.recovered = True
    return run
