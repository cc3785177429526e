"""Injections with faultgen: plain faultgen faults (detection only, or the
starvation hog a policy throttles), and faults turned on inside the
supervised `faultgen counter` services (detection, handling, recovery)."""
import json
import os
import signal
import subprocess
import threading
import time

from . import host
from .judge import case_records, judge_detection, judge_handling


class Ctx:
    """What every runner shares: the daemon, the paths, who owns which pid."""

    def __init__(self, build, daemon, work, log):
        self.build = build
        self.daemon = daemon
        self.work = work
        self.log = log
        self._claimed = {}
        self._lock = threading.Lock()

    def claim(self, run, pids):
        with self._lock:
            for p in pids:
                if p:
                    self._claimed[p] = run
                    run.pids.add(p)

    def claimed(self):
        with self._lock:
            return dict(self._claimed)


class Gen:
    """A faultgen run; its first stdout line is the ground truth."""

    def __init__(self, build, args):
        self.proc = subprocess.Popen([os.path.join(build, "faultgen")] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        self.lines = []
        if not line:
            self.header = None
            self.err = self.proc.stderr.read()
            self.proc.wait()
            return
        self.header = json.loads(line)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def crashes(self):
        return [x for x in self.lines if "crash" in x]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.kill_group(self.proc)


def open_faults(records, pids, cls=None):
    """'class pid' of the faults still open on these pids."""
    opened, closed = {}, set()
    for r in records:
        if r.get("pid") not in pids or (cls and r.get("class") != cls):
            continue
        k = (r.get("rule"), r.get("pid"))
        if r.get("kind") == "fault":
            opened[k] = "%s pid %s" % (r.get("class"), r.get("pid"))
        elif r.get("kind") == "resolved":
            closed.add(k)
    return [v for k, v in opened.items() if k not in closed]


def settle(ctx, since, pids, timeout=60):
    """Until every fault opened on these pids has resolved (or timeout)."""
    end = time.time() + timeout
    while time.time() < end:
        if not open_faults(ctx.daemon.records(since), pids):
            return True
        time.sleep(0.2)
    return False


def finish(ctx, run):
    run.end_ns = time.time_ns()
    run.records = [r for r in ctx.daemon.records(run.first_index)
                   if r.get("pid") in run.pids or r.get("kind") in ("fault", "resolved") and
                   r.get("class") == run.cls]


def run_faultgen(ctx, run, args, wait_s, memcg_limit=None):
    """A plain faultgen fault: detected and located (no policy acts on it)."""
    cg = host.memory_cgroup("fp_campaign_%d_%s" % (os.getpid(), run.name.replace("#", "_")), memcg_limit) \
        if memcg_limit else None
    run.first_index = ctx.daemon.count()
    g = Gen(ctx.build, args)
    if g.header is None:
        run.note = "faultgen failed: " + (g.err.strip().splitlines() or ["?"])[-1]
        run.miss("not injected", run.note)
        if cg:
            cg.remove()
        return run
    if cg:
        cg.add(g.header["culprit"])
    ctx.claim(run, [g.header["culprit"]] + list(g.header.get("victims", [])))
    run.victims.update(g.header.get("victims", []))
    run.injected_ns = g.header["injected_real_ns"]
    crash_loop = run.cls == "crash_loop"
    ctx.daemon.wait(lambda r: r.get("kind") == "fault" and r.get("class") == run.cls and
                    (r.get("pid") in run.pids or crash_loop), wait_s, since=run.first_index)
    crashes = g.crashes()
    g.stop()
    if crashes:
        ctx.claim(run, [c["crash"] for c in crashes])
    records = ctx.daemon.records(run.first_index)
    judge_detection(records, run, ctx.claimed())
    if crashes and run.fault is not None:
        # latency from the crash that completed the loop (or the crash), not from the child's start
        t = run.fault["_ns"] + 1_000_000
        before = [c["real_ns"] for c in crashes if c["real_ns"] <= t]
        origin = before[-1] if crash_loop and before else crashes[0]["real_ns"]
        run.latency_ms = max(0.0, (run.fault["_ns"] - origin) / 1e6)
    if cg:
        cg.remove()
    settle(ctx, run.first_index, run.pids)
    finish(ctx, run)
    return run


def run_starve(ctx, run, duration_s, wait_s, share):
    """faultgen starve: its hog starves its victims; the starvers policy
    throttles the hog. Handled when the CPU limit in force on the hog is the
    throttle's; recovered when the daemon's recovery check says so and the
    throttle is undone once the fault is gone."""
    run.first_index = ctx.daemon.count()
    g = Gen(ctx.build, ["starve", "--duration", "%ds" % duration_s])
    if g.header is None:
        run.miss("not injected", "faultgen starve failed: " + g.err.strip())
        return run
    hog = g.header["culprit"]
    ctx.claim(run, [hog])
    run.victims.update(g.header.get("victims", []))
    run.injected_ns = g.header["injected_real_ns"]
    obs = {"expect_share": share, "throttle_share": None}
    end = time.time() + wait_s
    recovered_at = None
    while time.time() < end:
        share_now = host.cpu_limit_in_force(hog)
        if share_now is not None and (obs["throttle_share"] is None or share_now < obs["throttle_share"]):
            obs["throttle_share"] = share_now
        recs = ctx.daemon.records(run.first_index)
        if any(r.get("kind") == "recovery" and r.get("pid") == hog for r in recs) and recovered_at is None:
            recovered_at = time.time()
        if recovered_at is not None and time.time() - recovered_at > 1:
            break
        time.sleep(0.2)
    g.stop()
    # the throttle goes with the hog (process exited) or after the cooldown
    ctx.daemon.wait(lambda r: r.get("kind") == "action" and r.get("pid") == hog and
                    r["action"].get("type") == "unthrottle", 15, since=run.first_index)
    records = ctx.daemon.records(run.first_index)
    judge_detection(records, run, ctx.claimed())
    obs["unthrottled"] = any(r.get("kind") == "action" and r.get("pid") == hog and
                             r["action"].get("type") == "unthrottle" and r["action"].get("result") in ("ok",)
                             for r in records) or not any(
        r.get("kind") == "action" and r.get("pid") == hog and r["action"].get("type") == "throttle" and
        r["action"].get("result") == "ok" for r in records)
    obs["running"] = True
    judge_handling(records, run, obs)
    settle(ctx, run.first_index, run.pids)
    finish(ctx, run)
    return run


class Service:
    """A `faultgen counter` the daemon supervises (a [[service]] of the
    campaign's config) that one worker at a time injects faults into."""

    def __init__(self, name, work, memcg=None):
        self.name = name
        self.dir = os.path.join(work, "ckpt", name)
        self.inject_path = self.dir + ".inject"
        self.memcg = memcg

    def log_path(self, ctx):
        return os.path.join(ctx.daemon.log_dir, self.name + ".log")

    def log_tail(self, ctx, offset):
        try:
            with open(self.log_path(ctx), errors="replace") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return ""

    def log_size(self, ctx):
        try:
            return os.path.getsize(self.log_path(ctx))
        except OSError:
            return 0

    def running_pid(self, ctx, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            pid = ctx.daemon.service_pid(self.name)
            if pid and host.alive(pid) and host.state(pid) != "D":
                return pid
            time.sleep(0.1)
        return None


def _json_lines(text):
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                pass


def run_service(ctx, run, svc, inject, wait_s, settle_s, share=None):
    """Turn a running service faulty (`inject`, as `faultgen counter` reads it)
    and follow the daemon: fault, the policy's action, the recovery check."""
    pid = svc.running_pid(ctx)
    if pid is None:
        run.miss("not injected", "service %s is not running" % svc.name)
        return run
    time.sleep(1.0)  # a checkpoint or more of healthy state before the fault
    offset = svc.log_size(ctx)
    run.first_index = ctx.daemon.count()
    ctx.claim(run, [pid])
    with open(svc.inject_path + ".tmp", "w") as f:
        f.write(inject)
    os.rename(svc.inject_path + ".tmp", svc.inject_path)
    end = time.time() + 5
    while time.time() < end and run.injected_ns is None:
        for j in _json_lines(svc.log_tail(ctx, offset)):
            if "injected" in j and j.get("pid") == pid:
                run.injected_ns = j["real_ns"]
        time.sleep(0.05)
    if run.injected_ns is None:
        run.note = "the counter never said it was injected"
        run.injected_ns = time.time_ns()
    obs = {"expect_share": share or 1.0, "throttle_share": None}
    fault_seen = None
    deadline = time.time() + wait_s
    final_at = None
    while True:
        now = time.time()
        recs = ctx.daemon.records(run.first_index)
        if fault_seen is None:
            fault_seen = next((r for r in recs if r.get("kind") == "fault" and r.get("class") == run.cls and
                               r.get("pid") == pid), None)
            if fault_seen is None and now > deadline:
                break
            if fault_seen is not None:
                deadline = now + settle_s
        if share is not None and host.alive(pid):
            s = host.cpu_limit_in_force(pid)
            if s is not None and (obs["throttle_share"] is None or s < obs["throttle_share"]):
                obs["throttle_share"] = s
        if fault_seen is not None:
            case, case_pids = case_records(recs, run, svc.name)
            recovery = [r for r in case if r.get("kind") == "recovery"]
            last_action = max((r["_ns"] for r in case if r.get("kind") == "action" and
                               r["action"].get("type") != "unthrottle"), default=0)
            done = recovery and recovery[-1]["_ns"] >= last_action and (
                recovery[-1]["recovery"].get("recovered") or "exhausted" in recovery[-1]["recovery"].get("detail", ""))
            if done and final_at is None:
                final_at = now
            # after the verdict: the fault resolves and a throttle is undone
            if final_at is not None and (now - final_at > 6 or (
                    not open_faults(recs, case_pids, run.cls) and
                    (share is None or any(r.get("kind") == "action" and r["action"].get("type") == "unthrottle"
                                          for r in case)))):
                break
            if now > deadline:
                break
        time.sleep(0.2)
    for j in _json_lines(svc.log_tail(ctx, offset)):
        if "crash" in j and j.get("crash") == pid:
            run.injected_ns = j["real_ns"]  # the crash itself, a tick after the injection
    records = ctx.daemon.records(run.first_index)
    judge_detection(records, run, ctx.claimed())
    now_pid = ctx.daemon.service_pid(svc.name)
    obs["running"] = host.alive(now_pid)
    obs["open_faults"] = open_faults(records, {now_pid}, run.cls) if now_pid else []
    case, _ = case_records(records, run, svc.name)
    restore = [r for r in case if r.get("kind") == "action" and r["action"].get("type") == "restore" and
               r["action"].get("result") == "ok"]
    if restore:
        tail = svc.log_tail(ctx, offset)
        src = restore[-1]["action"].get("restore_source", "newest")
        obs["restored"] = "restored from" in tail or src == "clean"
        obs["restore_log"] = (tail.strip().splitlines() or ["(empty)"])[-1][:160]
    throttled = [r for r in case if r.get("kind") == "action" and r["action"].get("type") == "throttle" and
                 r["action"].get("result") == "ok"]
    if throttled and not restore:
        obs["unthrottled"] = any(r.get("kind") == "action" and r["action"].get("type") == "unthrottle" and
                                 r["action"].get("result") == "ok" for r in case)
    ctx.claim(run, [p for p in (now_pid,) if p])
    judge_handling(records, run, obs, service=svc.name)
    try:
        os.unlink(svc.inject_path)
    except OSError:
        pass
    settle(ctx, run.first_index, run.pids, timeout=30)
    finish(ctx, run)
    return run
