"""Shared pieces of the bench/ scripts: the machine's description, a private
faultprobed (temp config, socket, state; no pinning) that is always stopped,
its socket, process CPU accounting, and the statistics.

Every script prints a header (kernel, CPU, nproc, date, load), its tables, and
as its LAST line `bench <name>: key=value ...`.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("FP_BUILD_DIR", os.path.join(REPO, "build"))
FAULTPROBED = os.path.join(BUILD, "faultprobed")
FAULTPROBE = os.path.join(BUILD, "faultprobe")
FAULTGEN = os.path.join(BUILD, "faultgen")
BENCH_PROCS = os.path.join(BUILD, "bench_procs")

_cleanups = []


def on_exit(fn):
    """Runs fn at exit, also on SIGINT/SIGTERM (newest first)."""
    _cleanups.append(fn)


def _run_cleanups(*_):
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # a cleanup must not hide the others
            print(f"bench: cleanup failed: {e}", file=sys.stderr)


def _on_signal(signum, _frame):
    _run_cleanups()
    sys.exit(128 + signum)


atexit.register(_run_cleanups)
signal.signal(signal.SIGINT, _on_signal)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def die(msg, code=1):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(code)


def need_root():
    if os.geteuid() != 0:
        die("must run as root (the probe and the peers load BPF programs)")


def need(*paths):
    for p in paths:
        if not (os.path.exists(p) or shutil.which(p)):
            die(f"{p} not found (build faultprobe with scripts/build, or FP_BUILD_DIR=...; "
                f"packages: scripts/install-deps bench)")


def temp_dir(prefix):
    """A temp dir on the real disk (/var/tmp if /tmp is tmpfs), removed at exit."""
    base = "/tmp"
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", "/tmp"], capture_output=True, text=True).stdout.strip()
        if out == "tmpfs":
            base = "/var/tmp"
    except OSError:
        pass
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    on_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


# ---- the machine ----------------------------------------------------------------------------------

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "kernel": os.uname().release,
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load": loadavg(),
    }


def attached_tracing_programs():
    """BPF programs of the tracing kinds loaded on the host (name, type, id):
    any of them runs in the loads' context and skews every baseline."""
    r = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    kinds = {"tracing", "raw_tracepoint", "tracepoint", "kprobe", "perf_event"}
    try:
        progs = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    return [(p.get("name", "?"), p.get("type"), p.get("id")) for p in progs if p.get("type") in kinds]


def header(name, mode, extra=""):
    # A probe left pinned by an earlier run (e2e tests once leaked one per run)
    # is attached to every sched_switch: the "without" runs would not be.
    progs = attached_tracing_programs()
    if progs and os.environ.get("FP_BENCH_ALLOW_FOREIGN_BPF") != "1":
        names = ", ".join(f"{n} (id {i})" for n, _, i in progs[:12])
        die(f"{len(progs)} tracing BPF programs are already loaded ({names}{', ...' if len(progs) > 12 else ''}): "
            "they would run in every baseline. Stop their owners (a pinned faultprobe: faultprobed --detach-probe; "
            "ls /sys/fs/bpf) or set FP_BENCH_ALLOW_FOREIGN_BPF=1 to measure anyway")
    m = machine()
    print(f"# bench {name} ({mode}){extra}")
    print(f"# kernel {m['kernel']} | cpu {m['cpu']} | nproc {m['nproc']} | date {m['date']} | "
          f"load at start {m['load']}")
    sys.stdout.flush()
    return m


def last_line(name, fields):
    parts = []
    for k, v in fields.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        parts.append(f"{k}={v}")
    print(f"bench {name}: " + " ".join(parts))
    sys.stdout.flush()


# ---- statistics -----------------------------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def quantile(xs, q):
    """Nearest-rank quantile (q in 0..1)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    i = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[i]


def spread(xs):
    """min-max and IQR as a short string."""
    if not xs:
        return "-"
    return f"{min(xs):.4g}..{max(xs):.4g} (IQR {quantile(xs, .25):.4g}..{quantile(xs, .75):.4g})"


def rng(xs):
    """min..max, short."""
    return f"{min(xs):.4g}..{max(xs):.4g}" if xs else "-"


def fmt(x, digits=4):
    if x is None or (isinstance(x, float) and x != x):
        return "n/a"
    return f"{x:.{digits}g}"


def table(rows, headers):
    w = [len(h) for h in headers]
    srows = [[str(c) for c in r] for r in rows]
    for r in srows:
        for i, c in enumerate(r):
            w[i] = max(w[i], len(c))
    line = lambda cells: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in srows:
        print(line(r))
    sys.stdout.flush()


# ---- CPU of processes -----------------------------------------------------------------------------

def proc_cpu_ns(pid):
    """On-CPU ns of every live thread of pid (schedstat), or None when it is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
    except FileNotFoundError:
        return None
    return total


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def kb(text):
    return int(text.split()[0]) if text else 0


# ---- faultprobed ----------------------------------------------------------------------------------

class Daemon:
    """A private faultprobed: config, socket, lock, state and logs in a temp dir,
    pin_dir = "" (the probe goes away with the process). Always stopped at exit."""

    def __init__(self, config_toml="", extra_args=(), name="fp-bench", exits_json=False):
        need(FAULTPROBED)
        self.dir = temp_dir(name + "-")
        self.socket = os.path.join(self.dir, "fp.sock")
        self.events = os.path.join(self.dir, "events.jsonl")
        self.exits = os.path.join(self.dir, "exits.jsonl") if exits_json else None
        self.log = os.path.join(self.dir, "daemon.log")
        cfg = os.path.join(self.dir, "faultprobe.toml")
        text = config_toml + f"""
[daemon]
syslog = false
socket = "{self.socket}"
lock_path = "{self.dir}/faultprobed.lock"
state_dir = "{self.dir}/state"
log_dir = "{self.dir}/logs"
pin_dir = ""
"""
        with open(cfg, "w") as f:
            f.write(text)
        os.chmod(cfg, 0o600)
        args = [FAULTPROBED, "--foreground", "--config", cfg, "--events-json", self.events]
        if self.exits:
            args += ["--exits-json", self.exits]
        args += list(extra_args)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        on_exit(self.stop)
        self._wait_ready()

    def _wait_ready(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                die(f"faultprobed exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if "probe attached" in self.log_text() and self.query({"cmd": "ping"}):
                return
            time.sleep(0.05)
        die(f"faultprobed not ready after {timeout}s:\n{self.log_text()[-3000:]}")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    @property
    def pid(self):
        return self.proc.pid

    def query(self, req, timeout=5.0):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.socket)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            s.close()
            line = buf.split(b"\n", 1)[0]
            return json.loads(line) if line else None
        except (OSError, ValueError):
            return None

    def status(self):
        r = self.query({"cmd": "status"})
        return r.get("status") if r and r.get("ok") else None

    def fresh_status(self, timeout=5.0):
        """A status built after two sampling ticks that began after now. The
        daemon builds the status when asked (it was rebuilt once a second, at
        the end of a tick): waiting for ticks keeps what callers rely on, that
        what the probe had delivered before the call is counted."""
        first = self.status()
        t0 = first.get("sampling", {}).get("ticks", 0) if first else 0
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            st = self.status()
            if st and st.get("sampling", {}).get("ticks", 0) > t0 + 1:
                return st
            time.sleep(0.01)
        return self.status()

    def view(self):
        r = self.query({"cmd": "view"})
        return r.get("view") if r and r.get("ok") else None

    def follow(self):
        """A socket following the event stream (backlog 0); read lines from it."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.socket)
        s.sendall(b'{"cmd":"events","backlog":0,"follow":true}\n')
        return s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.logf.closed:
            self.logf.close()


class Peers:
    """libbpf-tools attached as a user would: runqlat (run-queue latency) and biotop
    (per-process block IO). biotop needs kprobes; where they cannot attach (this
    machine's kernel), biolatency (block tracepoints) stands in and `note` says so."""

    def __init__(self):
        self.procs = []
        self.note = ""
        self.names = []
        self.dir = temp_dir("fp-peers-")
        self._start("runqlat", ["runqlat", "1"])
        if not self._start("biotop", ["biotop", "-C", "1"]):
            self.note = "biotop cannot attach here (kprobe on blk_account_io_start); biolatency stands in"
            self._start("biolatency", ["biolatency", "1"])
        on_exit(self.stop)

    def _start(self, name, argv):
        exe = shutil.which(argv[0]) or os.path.join("/usr/sbin", argv[0])
        log = open(os.path.join(self.dir, name + ".log"), "wb")
        p = subprocess.Popen([exe] + argv[1:], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # attached when it prints its "Tracing..." banner; gone or "failed" = not attached
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if p.poll() is not None:
                log.close()
                return False
            with open(os.path.join(self.dir, name + ".log"), "rb") as f:
                text = f.read()
            if b"Tracing" in text:
                break
            if b"failed" in text:
                p.kill()
                p.wait()
                log.close()
                return False
            time.sleep(0.05)
        if p.poll() is not None:
            log.close()
            return False
        self.procs.append((p, log))
        self.names.append(name)
        return True

    def stop(self):
        for p, log in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        self.procs = []


def prog_stats(owner_pids):
    """{program name: (run_cnt, run_time_ns)} of the BPF programs the given
    processes hold (kernel.bpf_stats_enabled must be 1 for the counts to move).
    Names repeat across twins (tp_btf / raw_tp): summed."""
    r = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    out = {}
    try:
        progs = json.loads(r.stdout or "[]")
    except ValueError:
        return out
    ids = set()
    for pid in owner_pids:  # the programs' ids from the owners' fds (bpftool's pids need an iterator)
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("prog_id:"):
                            ids.add(int(line.split()[1]))
            except (OSError, ValueError):
                pass
    for p in progs:
        if p.get("id") not in ids:
            continue
        c, t = out.get(p.get("name", "?"), (0, 0))
        out[p.get("name", "?")] = (c + p.get("run_cnt", 0), t + p.get("run_time_ns", 0))
    return out


class BpfStats:
    """kernel.bpf_stats_enabled on for the lifetime of the object (restored after)."""

    PATH = "/proc/sys/kernel/bpf_stats_enabled"

    def __init__(self):
        with open(self.PATH) as f:
            self.old = f.read().strip()
        with open(self.PATH, "w") as f:
            f.write("1")
        on_exit(self.stop)

    def stop(self):
        try:
            with open(self.PATH, "w") as f:
                f.write(self.old)
        except OSError:
            pass


def run(argv, timeout=600, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def parse_mode(argv, full_note, extra=None):
    import argparse
    ap = argparse.ArgumentParser(description=full_note)
    ap.add_argument("--quick", action="store_true", help="short runs, fewer repetitions (smoke test)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per configuration (default 5, quick 2)")
    if extra:
        extra(ap)
    return ap.parse_args(argv)
