"""The clean load the false-alarm rate is measured on: what a busy but
healthy host does. A parallel C++ build (this project, ccache off so it
compiles), a buffered copy of a large file, a loopback HTTP server under a
curl and a python client loop, and a cron-like burst of short processes
every 15 s. Every part runs in its own session and is killed by process
group at the end (a killed `bash -c` alone would leave its compilers running
into whatever the campaign does next)."""
import os
import socket
import subprocess
import time

from . import host

CLIENT = ("import sys, urllib.request\n"
          "url = sys.argv[1]\n"
          "while True:\n"
          "    try:\n"
          "        urllib.request.urlopen(url, timeout=5).read()\n"
          "    except OSError:\n"
          "        pass\n")


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _bash(script, **kw):
    return subprocess.Popen(["bash", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, **kw)


def run(root, work, io_dir, seconds, log):
    """Runs the load for `seconds`; returns (start_ns, end_ns) of the window."""
    build = os.path.join(work, "clean-build")
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "small.html"), "w") as f:
        f.write("<html>" + "x" * 2000 + "</html>\n")
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) * 8)
    big = os.path.join(io_dir, "fp_campaign_copy_%d.bin" % os.getpid())
    with open(big, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(512):
            f.write(chunk)
    port = _free_port()
    env = dict(os.environ, CCACHE_DISABLE="1")
    procs = [
        # the build, again from scratch whenever it finishes early
        _bash("while :; do rm -rf %s; cmake -S %s -B %s -G Ninja -DFAULTPROBE_TESTS=OFF >/dev/null 2>&1 && "
              "cmake --build %s -j%d >/dev/null 2>&1; done" % (build, root, build, build, os.cpu_count() or 2),
              env=env),
        _bash("while :; do cp %s %s.copy && sync; rm -f %s.copy; sleep 2; done" % (big, big, big)),
        subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", www, str(port)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True),
    ]
    time.sleep(1)  # the server listens
    procs += [
        _bash("while :; do curl -s -o /dev/null http://127.0.0.1:%d/big.bin; "
              "curl -s -o /dev/null http://127.0.0.1:%d/small.html; done" % (port, port)),
        subprocess.Popen(["python3", "-c", CLIENT, "http://127.0.0.1:%d/small.html" % port],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True),
        _bash("while :; do for i in $(seq 30); do (date; ls / ; sleep 0.2) >/dev/null & done; wait; sleep 15; done"),
    ]
    log("clean load: build, copy, HTTP on :%d, cron bursts, %d s" % (port, seconds))
    start = time.time_ns()
    time.sleep(seconds)
    end = time.time_ns()
    for p in procs:
        host.kill_group(p)
    for path in (big, big + ".copy"):
        try:
            os.unlink(path)
        except OSError:
            pass
    subprocess.run(["rm", "-rf", build, www])
    return start, end
