// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Seed family: every task alive when the probe starts (at load and at
 * takeover), walked once by a BPF task iterator. The hooks only meet a task
 * when it runs, forks, execs or is signalled, so without this a process that
 * sleeps through the probe's start is invisible, and a hang older than the
 * probe is never seen at all.
 *
 * Each process gets its slot and each thread its state as the hooks build
 * them at first sight (fp_proc_get_slot, fp_thread_init: what the kernel
 * counted so far is taken as already charged), so the first sample lists
 * every process and counts from the pass. A thread asleep in uninterruptible
 * sleep is marked in D from when that sleep began (its last switch-out as
 * the scheduler recorded it), so an old hang shows its real age at once.
 *
 * The hooks are attached while this runs: every write here is one the hooks
 * could race with, and each is made so that the race is harmless (see
 * seed_dstate).
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct fp_seed_stats fp_seed_stats = {};

#define FP_SCHED_NORMAL 0
#define FP_SCHED_BATCH 3
#define FP_SCHED_IDLE 5

/* rq->clock and rq->clock_task of a run queue (fp_task_rq); false if unreadable. */
static __always_inline bool rq_clocks(__u64 rq_addr, __u64 *clock, __u64 *clock_task)
{
	struct rq *rq = (struct rq *)rq_addr;

	if (!rq_addr)
		return false;
	*clock = BPF_CORE_READ(rq, clock);
	*clock_task = BPF_CORE_READ(rq, clock_task);
	return *clock != 0;
}

/*
 * When the task last switched out, on the scheduler's clock (rq->clock:
 * sched_clock_cpu, one clock for every CPU where sched_clock is stable).
 *
 * A fair-class task's last run began at sched_info.last_arrival (rq->clock
 * at its switch-in) and lasted se.sum_exec_runtime - se.prev_sum_exec_runtime
 * (set_next_entity sets the latter at the switch-in): exact but for the IRQ
 * and steal time inside that one run, which the task clock leaves out (the
 * start comes out that much early; microseconds for a run that ends by
 * blocking). Other classes (RT, deadline) do not keep prev_sum_exec_runtime:
 * their se.exec_start, set at the switch-out on the CPU's task clock
 * (rq->clock_task = rq->clock minus IRQ and steal time), is moved to rq->clock
 * with that CPU's offset between the two clocks now, so IRQ and steal time
 * spent on that CPU while the task slept make the start come out late by as
 * much. 0: not recorded (a task that never ran), or no way to the run
 * queue (fp_task_rq).
 */
static __always_inline __u64 last_switch_out(struct task_struct *task)
{
	__u32 policy = task->policy;
	__u64 sum = task->se.sum_exec_runtime, prev = task->se.prev_sum_exec_runtime;

	if (bpf_core_field_exists(task->sched_info.last_arrival) &&
	    (policy == FP_SCHED_NORMAL || policy == FP_SCHED_BATCH || policy == FP_SCHED_IDLE)) {
		__u64 arrival = BPF_CORE_READ(task, sched_info.last_arrival);

		if (arrival && sum >= prev)
			return arrival + (sum - prev);
	}
	__u64 exec = task->se.exec_start, clock, clock_task;

	if (!exec || !rq_clocks((__u64)fp_task_rq(task, false), &clock, &clock_task) || clock < clock_task)
		return 0;
	return exec + (clock - clock_task);
}

/*
 * The scheduler's clock time `sclock` as CLOCK_MONOTONIC (bpf_ktime_get_ns),
 * through this CPU's run queue (the loader's own, as it runs the pass): its
 * clock was last brought up to date at the loader's switch-in or at the last
 * tick, so it lags the true clock by at most one tick (1/HZ), and the result
 * comes out late by as much. The two clocks may also drift apart by NTP's
 * slew (at most 500 ppm) over the time since `sclock`. Clamped to
 * [start_time, now]; 0 when this CPU's run queue cannot be read.
 */
static __always_inline __u64 sched_to_mono(__u64 sclock, __u64 start_time)
{
	__u64 now = bpf_ktime_get_ns(), rq_now, unused;

	if (!rq_clocks((__u64)fp_task_rq((struct task_struct *)bpf_get_current_task(), false), &rq_now, &unused))
		return 0;
	__u64 ago = rq_now > sclock ? rq_now - sclock : 0;
	__u64 t = now > ago ? now - ago : 0;

	if (t < start_time)
		t = start_time;
	return t > now ? now : t;
}

/* Asleep: off the CPU and off the run queue (a woken task is queued at once). */
static __always_inline bool asleep(struct task_struct *task)
{
	return !task->on_cpu && !task->on_rq;
}

static __always_inline __u32 task_state(struct task_struct *task)
{
	return fp_task_state(task, true);
}

static __always_inline bool in_dstate(__u32 state)
{
	/* TASK_IDLE (D|NOLOAD) is how idle kthreads wait: not a stall, as in on_switch */
	return (state & FP_TASK_UNINTERRUPTIBLE) && !(state & FP_TASK_NOLOAD);
}

static __always_inline __u64 switches(struct task_struct *task)
{
	return task->nvcsw + task->nivcsw;
}

static __always_inline void proc_dstate_begin(struct fp_proc *p, __u64 since)
{
	if (__sync_fetch_and_add(&p->dstate_active, 1) == 0) {
		p->dstate_since_ns = since;
	} else if (!p->dstate_since_ns || since < p->dstate_since_ns) {
		/* another thread is in D already: the process has been since the earlier */
		p->dstate_since_ns = since;
	}
}

/*
 * Takes back proc_dstate_begin. An earlier start it gave while another thread
 * of the process was in D stays until that thread wakes: a race of a few
 * microseconds with a wakeup, on a process that is in D anyway.
 */
static __always_inline void proc_dstate_undo(struct fp_proc *p)
{
	if (__sync_fetch_and_add(&p->dstate_active, -1) == 1)
		p->dstate_since_ns = 0;
}

/*
 * Marks thread `t` of `p` in D since its sleep began, if it is asleep in D
 * and the hooks have no mark of their own. The hooks start a D-state with a
 * compare-and-swap on t->dstate_ns at the switch-out and end it with an
 * exchange at the switch-in (or the wakeup), so the mark is published the
 * same way: the process's count first, then the thread's start (a hook that
 * ends it right after finds both). The task may wake between the look and
 * the mark, and a mark on a task that is running again would read as a hang
 * until its next switch-in: so the task is looked at again after the mark,
 * and if it switched or woke meanwhile the mark is taken back (unless a hook
 * already took it), and the pass tries again on the state it is in now.
 */
static __always_inline void seed_dstate(struct task_struct *task, struct fp_thread *t, struct fp_proc *p)
{
	for (int i = 0; i < 3; i++) {
		__u32 state = task_state(task);
		__u64 sw = switches(task);

		if (!in_dstate(state) || !asleep(task) || t->dstate_ns)
			return;
		__u64 out = last_switch_out(task);
		__u64 since = 0;

		if (out)
			since = sched_to_mono(out, task->start_time);
		if (!since) {
			since = bpf_ktime_get_ns();
			fp_seed_stats.since_unknown++;
		}
		proc_dstate_begin(p, since);
		if (__sync_val_compare_and_swap(&t->dstate_ns, 0, since) != 0) {
			proc_dstate_undo(p); /* a hook marked it first */
			return;
		}
		if (task_state(task) == state && switches(task) == sw && asleep(task)) {
			fp_seed_stats.dstate++;
			return;
		}
		if (__sync_val_compare_and_swap(&t->dstate_ns, since, 0) != since)
			return; /* a hook ended it: from `since`, which was right */
		proc_dstate_undo(p);
		fp_seed_stats.withdrawn++;
	}
}

SEC("iter/task")
int seed_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	__u32 slot;

	if (!task)
		return 0; /* the end of the walk */
	__u32 tid = task->pid, tgid = task->tgid;

	if (!tid)
		return 0;
	fp_seed_stats.tasks++;
	/* an exiting task gets no new state (as in the hooks): its last switch frees it */
	if (task->flags & FP_PF_EXITING) {
		fp_seed_stats.exiting++;
		return 0;
	}

	bool known = bpf_map_lookup_elem(&proc_index, &tgid) != NULL;
	struct fp_proc *p = fp_proc_get_slot(tgid, task, true, &slot);

	if (!p)
		return 0;
	if (!known) {
		/*
		 * Every thread may have finished exiting since the check above, and
		 * the last one's final switch may have looked for the slot before it
		 * existed: then nobody would free it. signal->live drops before that
		 * switch, so a slot made before the drop is found there, and one made
		 * after is seen here.
		 */
		if (BPF_CORE_READ(task, signal, live.counter) == 0) {
			if (fp_proc_release(tgid))
				fp_seed_stats.released++;
			return 0;
		}
		fp_seed_stats.procs++;
		fp_store_rss(p, task, true); /* its resident set now, not at its next fault */
	}

	struct fp_thread *t = fp_thread_of(task, tid, false, true);

	if (!t) {
		t = fp_thread_of(task, tid, true, true);
		if (!t)
			return 0;
		fp_seed_stats.threads++;
		/* a hash entry is freed at the thread's final switch: one made after it would stay */
		if (!fp_thread_ts && (task->flags & FP_PF_EXITING)) {
			fp_thread_free(tid, true);
			return 0;
		}
	}
	seed_dstate(task, t, p);
	return 0;
}
