"""The campaign's faultprobed: started on the campaign's config with its own
socket, lock, state and log paths (never a real daemon's), and its event
stream (--events-json) tailed by a thread so that every injection reads the
records without re-reading the file."""
import datetime
import json
import os
import re
import signal
import subprocess
import threading
import time


def rfc3339_ns(text):
    """'2026-11-26T08:00:00.123Z' -> ns since the epoch."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(dt.timestamp() * 1e6)) * 1000


def daemon_table(workdir):
    """A [daemon] table that keeps the campaign's daemon out of a real one's way."""
    return ('\n[daemon]\nsocket = "%s/faultprobe.sock"\nlock_path = "%s/faultprobed.lock"\n'
            'state_dir = "%s/state"\nlog_dir = "%s/logs"\npin_dir = ""\n' % ((workdir,) * 4))


class Daemon:
    def __init__(self, build, config_text, workdir, name="daemon"):
        self.workdir = workdir
        self.events_path = os.path.join(workdir, name + "-events.jsonl")
        self.log_path = os.path.join(workdir, name + ".log")
        self.log_dir = os.path.join(workdir, "logs")
        if not re.search(r"^\s*\[daemon\]", config_text, re.M):
            config_text += daemon_table(workdir)
        self.config_path = os.path.join(workdir, name + ".toml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        os.chmod(self.config_path, 0o644)  # a config writable by others is refused
        self._records = []
        self._service_pid = {}  # service -> pid of its newest start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(build, "faultprobed"), "--foreground", "--events-json", self.events_path,
             "--config", self.config_path], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if "probe attached" in self.log_text():
                break
            if self.proc.poll() is not None:
                raise RuntimeError("faultprobed did not start:\n" + self.log_text())
            time.sleep(0.05)
        else:
            self.proc.kill()
            raise RuntimeError("faultprobed did not attach its probe in 60 s:\n" + self.log_text())
        self._tail = threading.Thread(target=self._follow, daemon=True)
        self._tail.start()

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def _follow(self):
        pos = 0
        partial = ""
        while True:
            stopping = self._stop.is_set()
            try:
                with open(self.events_path, errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                chunk = ""
            if chunk:
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                parsed = []
                for line in lines:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if "time" in rec:
                        rec["_ns"] = rfc3339_ns(rec["time"])
                    parsed.append(rec)
                with self._lock:
                    self._records.extend(parsed)
                    for r in parsed:
                        if r.get("kind") == "service" and r.get("event") == "started":
                            self._service_pid[r.get("service")] = r.get("pid")
            if stopping:
                return
            time.sleep(0.05)

    def records(self, since=0):
        """The records from index `since` on (a copy)."""
        with self._lock:
            return self._records[since:]

    def count(self):
        with self._lock:
            return len(self._records)

    def wait(self, pred, timeout, since=0, poll=0.1):
        """The first record (from `since`) satisfying pred, or None after timeout."""
        end = time.time() + timeout
        while True:
            for r in self.records(since):
                if pred(r):
                    return r
            if time.time() >= end:
                return None
            time.sleep(poll)

    def service_pid(self, name):
        """The pid of the newest `started` record of a service (None before one)."""
        with self._lock:
            return self._service_pid.get(name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stop.set()
        self._tail.join(timeout=5)
        self._log.close()
