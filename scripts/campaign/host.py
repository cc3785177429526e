"""What the campaign asks of the host: cgroups it makes for injections (memory
limits, a pids limit), the CPU limit in force on a process (a throttle's
effect), process state, and killing what it started (by process group or
cgroup, never by name)."""
import os
import signal
import time

V1 = "/sys/fs/cgroup"


def pure_v2():
    return os.path.exists(os.path.join(V1, "cgroup.controllers"))


def _v1(controller):
    """The v1 hierarchy of a controller, or None (cgroup v2 only)."""
    if pure_v2():
        return None
    for name in (controller, "cpu,cpuacct"):
        path = os.path.join(V1, name)
        if os.path.isdir(path):
            return path
    return None


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Cgroup:
    """A cgroup made for one injection, in each v1 controller asked for (or
    the v2 tree), removed by remove() after its processes are killed."""

    def __init__(self, name, controllers, limits):
        self.name = name
        self.paths = []
        for ctrl in controllers:
            root = _v1(ctrl)
            if root is None:
                root = V1  # cgroup v2: one tree
            path = os.path.join(root, name)
            if path not in self.paths:
                os.makedirs(path, exist_ok=True)
                self.paths.append(path)
        for fname, value in limits.items():
            for path in self.paths:
                target = os.path.join(path, fname)
                if os.path.exists(target):
                    _write(target, str(value))

    def add(self, pid):
        for path in self.paths:
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def pids(self):
        out = set()
        for path in self.paths:
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
        return out

    def kill_all(self, timeout=10):
        """SIGKILL until empty (a fork bomb breeds while it is being killed)."""
        end = time.time() + timeout
        while time.time() < end:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        return not self.pids()

    def remove(self):
        self.kill_all()
        for path in self.paths:
            end = time.time() + 5
            while time.time() < end:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def memory_cgroup(name, limit_bytes):
    limits = {"memory.limit_in_bytes": limit_bytes, "memory.max": limit_bytes}
    return Cgroup(name, ["memory"], limits)


def cpu_limit_in_force(pid):
    """The tightest CPU share (cores) any cgroup on the process's path allows,
    or None when nothing limits it (or it is gone). A throttle in place writes
    the limit into the process's own cgroup or a child of it: either way it is
    on this path."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        ctrls, path = parts[1].split(","), parts[2]
        if parts[0] == "0" and parts[1] == "":
            if not pure_v2():
                continue  # a hybrid host's v2 tree (here: hugetlb only) carries no CPU limit
            root, files = V1, ("cpu.max",)
        elif "cpu" in ctrls:
            root = _v1("cpu")
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        if root is None:
            continue
        rel = path.strip("/")
        segments = rel.split("/") if rel else []
        for i in range(len(segments) + 1):
            d = os.path.join(root, *segments[:i])
            share = _share(d, files)
            if share is not None and (best is None or share < best):
                best = share
    return best


def _share(d, files):
    try:
        if files == ("cpu.max",):
            with open(os.path.join(d, "cpu.max")) as f:
                quota, period = f.read().split()
            return None if quota == "max" else int(quota) / float(period)
        with open(os.path.join(d, files[0])) as f:
            quota = int(f.read())
        with open(os.path.join(d, files[1])) as f:
            period = int(f.read())
        return None if quota < 0 else quota / float(period)
    except (OSError, ValueError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return state(pid) not in (None, "Z", "X")


def state(pid):
    """The one-letter state of /proc/PID/stat, None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    close = text.rfind(")")
    return text[close + 2] if close >= 0 and close + 2 < len(text) else None


def kill_group(proc, sig=signal.SIGKILL):
    """Signal the process group a Popen(start_new_session=True) leads, then reap it."""
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001 - a stuck child must not stop the campaign
        pass
