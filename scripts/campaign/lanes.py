"""Running injections side by side where they cannot disturb each other.

A lane is a queue run one injection at a time; lanes run at once. A pool is
a queue that K workers take from, each with its own services. Which
injection goes where (and why that cannot bias detection or localization)
is decided in scripts/fault-campaign, where the plan is."""
import queue
import sys
import threading
import traceback


def interleave(groups):
    """[[a1, a2], [b1]] -> [a1, b1, a2]: a spell of load on the machine hits
    every class a little instead of one class entirely."""
    out = []
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        for g in groups:
            if i < len(g):
                out.append(g[i])
    return out


def _guard(job, *args):
    try:
        job(*args)
    except Exception:  # noqa: BLE001 - one broken injection must not stop the others
        print("campaign: an injection failed:\n" + traceback.format_exc(), file=sys.stderr)


def run_lanes(lanes, pool_jobs, workers):
    """lanes: {name: [job()]}, run each list in order in its own thread.
    pool_jobs: [job(worker)], taken by the `workers` (objects handed to the
    jobs: the services one worker owns) concurrently."""
    threads = []
    for name, jobs in lanes.items():
        t = threading.Thread(target=lambda js=jobs: [_guard(j) for j in js], name=name, daemon=True)
        threads.append(t)
    q = queue.Queue()
    for j in pool_jobs:
        q.put(j)

    def work(worker):
        while True:
            try:
                j = q.get_nowait()
            except queue.Empty:
                return
            _guard(j, worker)
    for w in workers:
        threads.append(threading.Thread(target=work, args=(w,), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
