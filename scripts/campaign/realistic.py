"""Injections with ordinary programs, the faults real hosts have (issue 14's
workloads): a buffered writer next to a reader that suffers, an RT spinner
next to a CFS process on its CPU, a shell fork bomb in a pids-limited
cgroup, a process already hung when the daemon starts, a fast leak in a
memory cgroup, an OOM triggered by a non-main thread. Detection and
localization only: no policy of the campaign matches them."""
import os
import socket
import subprocess
import threading
import time

from . import host
from .injections import finish, settle
from .judge import culprit_of, judge_detection

VICTIM = ("import time\n"
          "while True:\n"
          "    t = time.perf_counter()\n"
          "    while time.perf_counter() - t < 0.001: pass\n"
          "    time.sleep(0.005)\n")

FAST_LEAK = ("import time\n"
             "chunks, t0 = [], time.time()\n"
             "while True:\n"
             "    chunks.append(b'x' * (5 << 20))\n"   # touched: bytes of 'x', not a lazy calloc
             "    time.sleep(max(0.0, t0 + len(chunks) * 0.1 - time.time()))\n")  # 50 MB/s

THREAD_OOM = ("import threading\n"
              "def grow():\n"
              "    chunks = []\n"
              "    while True:\n"
              "        chunks.append(b'x' * (8 << 20))\n"
              "t = threading.Thread(target=grow)\n"
              "t.start()\n"
              "t.join()\n")


# One 1 MiB O_DIRECT read of a random place of the file every 20 ms: a reader
# whose every request goes to the disk (a database's). 4 KiB sequential reads
# (dd iflag=direct) were served fast beside the writeback and suffered nothing.
READER = ("import mmap, os, random, sys, time\n"
          "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)\n"
          "blocks = os.fstat(fd).st_size >> 20\n"
          "buf = mmap.mmap(-1, 1 << 20)\n"
          "while True:\n"
          "    os.preadv(fd, [buf], random.randrange(blocks) << 20)\n"
          "    time.sleep(0.02)\n")


# A buffered writer that keeps writing for as long as it runs, in 1 MiB
# writes through the page cache over the same 1 GiB of its file (a log or a
# database's data file): a one-shot `dd count=8000` on this disk ends after
# ~5 s at 1.5 GB/s, within io_storm's hold, and the disk's use stays bounded.
WRITER = ("import os, sys\n"
          "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
          "chunk = b'\\0' * (1 << 20)\n"
          "while True:\n"
          "    os.lseek(fd, 0, os.SEEK_SET)\n"
          "    for _ in range(1024):\n"
          "        os.write(fd, chunk)\n")


APP_LOGGER = ("import sys, time\n"
              "with open(sys.argv[1], 'a', buffering=1) as f:\n"
              "    i = 0\n"
              "    while True:\n"
              "        f.write('INFO request %d served\\n' % i)\n"
              "        f.write('ERROR request %d failed: upstream reset\\n' % i)\n"
              "        i += 1\n"
              "        time.sleep(0.02)\n")
# A client of an HTTP backend that is down, as a web app retries its API:
# urllib every 50 ms, one process, connection refused each time.
DEAD_BACKEND_CLIENT = ("import sys, time, urllib.request\n"
                       "url = 'http://127.0.0.1:%s/health' % sys.argv[1]\n"
                       "while True:\n"
                       "    try:\n"
                       "        urllib.request.urlopen(url, timeout=1).read()\n"
                       "    except OSError:\n"
                       "        pass\n"
                       "    time.sleep(0.05)\n")


def _closed_port():
    """A loopback TCP port nobody listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _popen(argv, **kw):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **kw)


def _wait_fault(ctx, run, timeout):
    """The first fault of the run's class on its culprit or on a process no
    other injection owns: another worker's injection of the same class (an
    oom_kill in the pool beside the thread OOM, 45 ms apart, measured) is not
    this run's answer, and judging on it would miss the one that follows."""
    def mine(r):
        if r.get("kind") != "fault" or r.get("class") != run.cls:
            return False
        owner = ctx.claimed().get(r.get("pid"))
        return culprit_of(r, run) or owner is None or owner is run
    return ctx.daemon.wait(mine, timeout, since=run.first_index)


def _judge(ctx, run):
    judge_detection(ctx.daemon.records(run.first_index), run, ctx.claimed())


def _close(ctx, run, pids, timeout):
    """Judged, then settled (its faults resolved) and its records kept."""
    _judge(ctx, run)
    settle(ctx, run.first_index, pids, timeout=timeout)
    finish(ctx, run)
    return run


def rt_spinner(ctx, run, wait_s=25):
    """A SCHED_FIFO spinner pinned to the last CPU, next to a CFS process
    there that wants it for 1 ms every 5 ms. runq_starvation, culprit: the spinner."""
    cpu = str((os.cpu_count() or 1) - 1)
    run.first_index = ctx.daemon.count()
    victim = _popen(["taskset", "-c", cpu, "python3", "-c", VICTIM])
    time.sleep(0.5)
    spinner = _popen(["chrt", "-f", "10", "taskset", "-c", cpu, "sh", "-c", "while :; do :; done"])
    run.injected_ns = time.time_ns()
    ctx.claim(run, [spinner.pid])
    run.victims.add(victim.pid)
    fault = _wait_fault(ctx, run, wait_s)
    while fault is not None and fault.get("pid") not in run.pids and time.time_ns() - run.injected_ns < wait_s * 1e9:
        time.sleep(0.5)  # blamed on someone else first: give the right one its chance
        fault = next((r for r in ctx.daemon.records(run.first_index) if r.get("kind") == "fault" and
                      r.get("class") == run.cls and r.get("pid") in run.pids), fault)
    host.kill_group(spinner)
    host.kill_group(victim)
    return _close(ctx, run, run.pids | run.victims, 30)


def shell_forkbomb(ctx, run, wait_s=20, pids_max=200):
    """`b(){ b|b& }; b` in a cgroup with pids.max: generations reparent, so no
    single tree forks fast. fork_bomb, culprit: any member (the cgroup's)."""
    name = "fp_campaign_%d_bomb%d" % (os.getpid(), run.n)
    cg = host.Cgroup(name, ["pids", "cpu"], {"pids.max": pids_max})
    run.cgroup = name
    run.first_index = ctx.daemon.count()
    procs = " ".join("echo $$ > %s/cgroup.procs;" % p for p in cg.paths)
    bomb = _popen(["bash", "-c", procs + " b(){ b|b& }; b"])
    run.injected_ns = time.time_ns()
    stop = threading.Event()

    def members():  # the bomb's pids, for the record (the cgroup decides who is a member)
        while not stop.is_set():
            ctx.claim(run, cg.pids())
            time.sleep(0.02)
    watcher = threading.Thread(target=members, daemon=True)
    watcher.start()
    _wait_fault(ctx, run, wait_s)
    stop.set()
    watcher.join()
    cg.kill_all()
    host.kill_group(bomb)
    cg.remove()
    return _close(ctx, run, run.pids, 20)


def buffered_writer(ctx, run, io_dir, read_file, wait_s=30):
    """A writer through the page cache (no O_DIRECT) of a 256 MiB memory
    cgroup, as a container's writer is, beside a checkpointer that forces what
    is dirty out (`sync -f` every 50 ms, as databases do) and a reader of 1 MiB
    O_DIRECT requests that suffers the writeback. io_storm, culprit: the
    writer. Without the memory limit, the syncer and the large reads, this
    machine's fast virtual disk absorbed an unlimited dd's background
    writeback and nobody suffered (measured: 0/10, dd only spun a CPU)."""
    out = os.path.join(io_dir, "fp_campaign_dd_%d.bin" % os.getpid())
    run.first_index = ctx.daemon.count()
    reader = _popen(["python3", "-c", READER, read_file])
    run.victims.add(reader.pid)
    time.sleep(1)
    cg = host.memory_cgroup("fp_campaign_%d_%s" % (os.getpid(), run.name.replace("#", "_").replace(":", "_")),
                            256 << 20)
    writer = _popen(["sh", "-c", "echo $$ > %s/cgroup.procs && exec python3 -c \"$0\" %s" % (cg.paths[0], out),
                     WRITER])
    syncer = _popen(["sh", "-c", "while :; do sync -f %s; sleep 0.05; done" % io_dir])
    run.injected_ns = time.time_ns()
    ctx.claim(run, [writer.pid])
    _wait_fault(ctx, run, wait_s)
    host.kill_group(syncer)
    host.kill_group(writer)
    host.kill_group(reader)
    cg.remove()
    try:
        os.unlink(out)
    except OSError:
        pass
    return _close(ctx, run, run.pids | run.victims, 30)


def _in_memcg(ctx, run, limit, code, wait_s):
    cg = host.memory_cgroup("fp_campaign_%d_%s" % (os.getpid(), run.name.replace("#", "_").replace(":", "_")), limit)
    run.first_index = ctx.daemon.count()
    proc = _popen(["sh", "-c", "echo $$ > %s/cgroup.procs && exec python3 -c \"$0\"" % cg.paths[0], code])
    run.injected_ns = time.time_ns()
    ctx.claim(run, [proc.pid])
    _wait_fault(ctx, run, wait_s)
    host.kill_group(proc)
    cg.remove()
    return _close(ctx, run, run.pids, 30)


def fast_leak(ctx, run, wait_s=25):
    """50 MB/s in a 1 GiB memory cgroup: memory_leak before the OOM killer (20 s)."""
    return _in_memcg(ctx, run, 1 << 30, FAST_LEAK, wait_s)


def thread_oom(ctx, run, wait_s=20):
    """A non-main thread allocates past a 128 MiB memory cgroup: oom_kill, culprit the process."""
    return _in_memcg(ctx, run, 128 << 20, THREAD_OOM, wait_s)


def app_errors(ctx, run, log_path, wait_s=20):
    """A python service appending 50 ERROR lines a second (among as many
    INFO lines) to its own log file, which a [[logwatch]] follows. app_errors,
    culprit: the writer, named by the kernel (fanotify). One at a time: two
    writers of one file are not told apart without a pid in the line."""
    run.first_index = ctx.daemon.count()
    proc = _popen(["python3", "-c", APP_LOGGER, log_path])
    run.injected_ns = time.time_ns()
    ctx.claim(run, [proc.pid])
    _wait_fault(ctx, run, wait_s)
    host.kill_group(proc)
    return _close(ctx, run, run.pids, 30)
def dead_backend_client(ctx, run, wait_s=20):
    """A python urllib client retrying a backend whose port is closed every
    50 ms. net_connect_failures, culprit: the client (the refusing RSTs are
    handled in softirq; the probe charges them to the socket's owner)."""
    run.first_index = ctx.daemon.count()
    client = _popen(["python3", "-c", DEAD_BACKEND_CLIENT, str(_closed_port())])
    run.injected_ns = time.time_ns()
    ctx.claim(run, [client.pid])
    _wait_fault(ctx, run, wait_s)
    host.kill_group(client)
    return _close(ctx, run, run.pids, 20)


class FrozenHangs:
    """`dd` writers blocked on a frozen ext4 (loop device, fsfreeze): in D
    state before the daemon starts. Started by start(), judged by judge()
    once the daemon runs, released by release()."""

    def __init__(self, work, count):
        self.dir = os.path.join(work, "frozen")
        self.mnt = os.path.join(self.dir, "mnt")
        self.loop = None
        self.mounted = self.frozen = False
        self.procs = []
        self.started_ns = []
        self.count = count
        self.error = None

    def _sh(self, cmd):
        return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        img = os.path.join(self.dir, "img")
        r = self._sh("truncate -s 64M %s && mkfs.ext4 -q -F %s" % (img, img))
        if r.returncode != 0:
            self.error = "mkfs.ext4: " + r.stdout.strip()
            return False
        r = self._sh("losetup -f --show %s" % img)
        if r.returncode != 0:
            self.error = "losetup: " + r.stdout.strip()
            return False
        self.loop = r.stdout.strip()
        if self._sh("mount %s %s" % (self.loop, self.mnt)).returncode != 0:
            self.error = "cannot mount " + self.loop
            return False
        self.mounted = True
        if self._sh("fsfreeze -f %s" % self.mnt).returncode != 0:
            self.error = "fsfreeze failed"
            return False
        self.frozen = True
        for i in range(self.count):
            self.procs.append(_popen(["dd", "if=/dev/zero", "of=%s/f%d" % (self.mnt, i), "bs=4k", "count=1",
                                      "status=none"]))
            self.started_ns.append(time.time_ns())
        end = time.time() + 10
        while time.time() < end and not all(host.state(p.pid) == "D" for p in self.procs):
            time.sleep(0.05)
        return True

    def judge(self, ctx, runs, wait_s):
        """After the daemon started: one run per blocked dd."""
        since = 0
        for run, proc, t in zip(runs, self.procs, self.started_ns):
            run.first_index = since
            run.injected_ns = t  # the D state began before the daemon ran
            ctx.claim(run, [proc.pid])
            if self.error:
                run.note = self.error
        deadline = time.time() + wait_s
        for run in runs:
            ctx.daemon.wait(lambda r: r.get("kind") == "fault" and r.get("class") == "hang" and
                            r.get("pid") in run.pids, max(0.0, deadline - time.time()), since=since)
            _judge(ctx, run)
        self.release()
        for run in runs:
            settle(ctx, since, run.pids, timeout=30)
            finish(ctx, run)
        return runs

    def release(self):
        if self.frozen:
            self._sh("fsfreeze -u %s" % self.mnt)
            self.frozen = False
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                host.kill_group(p)
        if self.mounted:
            self._sh("umount %s" % self.mnt)
            self.mounted = False
        if self.loop:
            self._sh("losetup -d %s" % self.loop)
            self.loop = None
