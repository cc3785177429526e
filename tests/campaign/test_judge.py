"""Unit tests of how the campaign judges one injection from the daemon's
records (scripts/campaign/judge.py): located or blamed on whom, handled or
why not, recovered or what was seen instead."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))

from campaign.judge import Run, judge_detection, judge_handling  # noqa: E402

S = 1_000_000_000


def fault(cls, pid, t, comm="faultgen", cgroup="/"):
    return {"kind": "fault", "class": cls, "rule": cls, "pid": pid, "comm": comm, "cgroup": cgroup, "_ns": t}


def action(cls, pid, t, type_, result="ok", detail="", **extra):
    a = {"type": type_, "result": result, "detail": detail}
    a.update(extra)
    return {"kind": "action", "class": cls, "pid": pid, "_ns": t, "action": a}


def recovery(cls, pid, t, recovered, detail=""):
    return {"kind": "recovery", "class": cls, "pid": pid, "_ns": t,
            "recovery": {"recovered": recovered, "detail": detail}}


def started(service, pid, t):
    return {"kind": "service", "service": service, "event": "started", "pid": pid, "_ns": t}


def run_of(cls, pid, t=100 * S, handling=None):
    r = Run(cls, cls, 1, "test")
    r.pids.add(pid)
    r.injected_ns = t
    r.handling = handling
    return r


class Detection(unittest.TestCase):
    def test_located_with_latency(self):
        r = run_of("crash", 42)
        judge_detection([fault("crash", 42, 100 * S + 5_000_000)], r, {42: r})
        self.assertTrue(r.detected and r.located)
        self.assertAlmostEqual(r.latency_ms, 5.0)
        self.assertEqual(r.misses, [])

    def test_blamed_on_someone_else(self):
        r = run_of("runq_starvation", 42)
        judge_detection([fault("runq_starvation", 7, 101 * S, comm="cc1plus")], r, {42: r})
        self.assertTrue(r.detected)
        self.assertFalse(r.located)
        self.assertEqual(r.misses, ["runq_starvation#1 mislocated: blamed pid 7 (cc1plus) instead of 42"])

    def test_a_fault_of_another_injection_is_not_this_one(self):
        r, other = run_of("hang", 42), run_of("hang", 43)
        judge_detection([fault("hang", 43, 101 * S)], r, {42: r, 43: other})
        self.assertFalse(r.detected)
        self.assertIn("no hang fault opened", r.misses[0])
        self.assertIn("other faults meanwhile: hang pid 43", r.misses[0])

    def test_what_the_culprit_got_instead(self):
        r = run_of("memory_leak", 42)
        judge_detection([fault("oom_kill", 42, 101 * S)], r, {42: r})
        self.assertEqual(r.misses, ["memory_leak#1 not detected: no memory_leak fault opened; "
                                    "on the culprit instead: oom_kill"])

    def test_a_member_of_the_cgroup_is_the_culprit(self):
        r = run_of("fork_bomb", 42)
        r.cgroup = "fp_bomb1"
        judge_detection([fault("fork_bomb", 999, 101 * S, comm="bash", cgroup="/fp_bomb1")], r, {42: r})
        self.assertTrue(r.located)

    def test_old_faults_do_not_count(self):
        r = run_of("crash", 42)
        judge_detection([fault("crash", 42, 90 * S)], r, {42: r})
        self.assertFalse(r.detected)


class Handling(unittest.TestCase):
    def restored(self, recovered=True):
        r = run_of("crash", 42, handling=("restore",))
        recs = [fault("crash", 42, 101 * S), action("crash", 42, 102 * S, "restore"),
                started("counter-q1", 50, 102 * S + 1), recovery("crash", 50, 110 * S, recovered, "no new crash")]
        judge_detection(recs, r, {42: r})
        return r, recs

    def test_restore_that_took_effect_and_held(self):
        r, recs = self.restored()
        judge_handling(recs, r, {"running": True, "restored": True}, service="counter-q1")
        self.assertTrue(r.handled)
        self.assertTrue(r.recovered)
        self.assertEqual(r.misses, [])

    def test_the_replacement_counts_when_the_runner_claimed_it(self):
        # run_service claims the service's pid at the end (the replacement) before judging
        r, recs = self.restored()
        r.pids.add(50)
        judge_handling(recs, r, {"running": True, "restored": True}, service="counter-q1")
        self.assertTrue(r.handled)
        self.assertEqual(r.misses, [])

    def test_a_start_recorded_just_before_its_action_counts(self):
        # a restore of a crashed service starts it at once: the service record
        # comes a few ms before the action record of the same tick
        r = run_of("crash", 42, handling=("restore",))
        recs = [fault("crash", 42, 101 * S), started("counter-q1", 50, 102 * S - 2_000_000),
                action("crash", 42, 102 * S, "restore"), recovery("crash", 50, 110 * S, True)]
        judge_detection(recs, r, {42: r})
        judge_handling(recs, r, {"running": True, "restored": True}, service="counter-q1")
        self.assertTrue(r.handled and r.recovered, r.misses)

    def test_the_daemon_said_recovered_but_the_service_is_down(self):
        r, recs = self.restored()
        judge_handling(recs, r, {"running": False}, service="counter-q1")
        self.assertTrue(r.handled)
        self.assertFalse(r.recovered)
        self.assertEqual(r.misses, ["crash#1 not recovered: the process is not running at the end "
                                    "(the daemon's own check said recovered)"])

    def test_the_recovery_check_said_no(self):
        r, recs = self.restored(recovered=False)
        recs[-1]["recovery"]["detail"] = "ladder exhausted"
        judge_handling(recs, r, {"running": True}, service="counter-q1")
        self.assertEqual(r.misses, ["crash#1 not recovered: the daemon's recovery check: ladder exhausted"])

    def test_no_replacement_is_not_handled(self):
        r = run_of("hang", 42, handling=("restore",))
        recs = [fault("hang", 42, 101 * S), action("hang", 42, 102 * S, "restore", "skipped", "already stopping")]
        judge_detection(recs, r, {42: r})
        judge_handling(recs, r, {"running": True}, service="counter-q1")
        self.assertFalse(r.handled)
        self.assertEqual(r.misses, ["hang#1 not handled: restore skipped: already stopping"])

    def test_a_throttle_counts_when_its_limit_is_in_force(self):
        r = run_of("runq_starvation", 42, handling=("throttle",))
        recs = [fault("runq_starvation", 42, 101 * S), action("runq_starvation", 42, 102 * S, "throttle"),
                recovery("runq_starvation", 42, 108 * S, True)]
        judge_detection(recs, r, {42: r})
        judge_handling(recs, r, {"expect_share": 0.1, "throttle_share": 0.1, "running": True})
        self.assertTrue(r.handled and r.recovered)
        r2 = run_of("runq_starvation", 42, handling=("throttle",))
        judge_detection(recs, r2, {42: r2})
        judge_handling(recs, r2, {"expect_share": 0.1, "throttle_share": None, "running": True})
        self.assertFalse(r2.handled)
        self.assertEqual(r2.misses, ["runq_starvation#1 not handled: throttle ok: ; but the CPU limit in force on "
                                     "pid 42 was none"])

    def test_a_second_rung_on_the_replacement_is_followed(self):
        r = run_of("cpu_runaway", 42, handling=("throttle", "restore"))
        recs = [fault("cpu_runaway", 42, 101 * S), action("cpu_runaway", 42, 102 * S, "restore"),
                started("counter-cpu", 60, 103 * S), recovery("cpu_runaway", 60, 109 * S, False, "escalating"),
                action("cpu_runaway", 60, 109 * S, "restore", restore_source="older"),
                started("counter-cpu", 61, 110 * S), recovery("cpu_runaway", 61, 116 * S, True)]
        judge_detection(recs, r, {42: r})
        judge_handling(recs, r, {"running": True, "restored": True}, service="counter-cpu")
        self.assertTrue(r.handled and r.recovered, r.misses)


if __name__ == "__main__":
    unittest.main()
