// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Scheduler family: on-CPU time, run-queue wait, context switches,
 * uninterruptible sleep, forks, execs, process exit and hung tasks.
 */
#include "common.bpf.h"
#include "runq_blame.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u32 fp_slots_hwm = 0;
const volatile __u32 fp_dirty_words_per_cpu = FP_DEFAULT_MAX_PROCS / 64;
const volatile bool fp_thread_ts = false;
const volatile bool fp_runq_sched_info = false;
const volatile bool fp_task_io = false;
const volatile __u64 fp_loaded_ns = ~0ull; /* until the loader sets it: nobody is new */
const volatile __u32 fp_ringbuf_wake_bytes = FP_DEFAULT_RINGBUF_BYTES / 4;
const volatile bool fp_runq_blame = false;

static __always_inline void account_runq_wait(struct fp_proc *p, __u64 wait)
{
	__u32 slot = fp_hist_slot(wait);

	__sync_fetch_and_add(&p->runq_wait_ns, wait);
	__sync_fetch_and_add(&p->runq_waits, 1);
	fp_atomic_max(&p->runq_wait_max_ns, wait);
	if (slot < FP_HIST_SLOTS)
		__sync_fetch_and_add(&p->runq_hist[slot], 1);
}

/*
 * `n` run-queue waits of `wait` ns in total, from sched_info (normally one:
 * every arrival on a CPU is followed by the switch-out that reads it).
 */
static __always_inline void account_runq_waits(struct fp_proc *p, __u64 wait, __u64 n)
{
	if (n == 1) {
		account_runq_wait(p, wait);
		return;
	}
	__u64 each = wait / n;
	__u32 slot = fp_hist_slot(each);

	__sync_fetch_and_add(&p->runq_wait_ns, wait);
	__sync_fetch_and_add(&p->runq_waits, n);
	fp_atomic_max(&p->runq_wait_max_ns, each);
	if (slot < FP_HIST_SLOTS)
		__sync_fetch_and_add(&p->runq_hist[slot], n);
}

/*
 * A thread of `p` left uninterruptible sleep at `now`. Its start is taken
 * with an exchange: the seeder (seed.bpf.c) may withdraw a D-state it marked
 * at the same moment, and exactly one of the two must account for it.
 */
static __always_inline void end_dstate(struct fp_proc *p, struct fp_thread *t, __u64 now)
{
	__u64 start = __sync_lock_test_and_set(&t->dstate_ns, 0);
	__u64 d = now > start ? now - start : 0;

	if (!p || !start)
		return;
	__sync_fetch_and_add(&p->dstate_ns, d);
	fp_atomic_max(&p->dstate_max_ns, d);
	if (__sync_fetch_and_add(&p->dstate_active, -1) == 1)
		p->dstate_since_ns = 0;
}

/* Final switch-out of a dead task: see on_dead below. */
static __always_inline void on_dead(struct task_struct *task, __u32 tgid, struct fp_proc *p);

/*
 * sched_switch is the one hook that sees every change of who runs: it
 * charges prev the CPU time the kernel counted for it (se.sum_exec_runtime,
 * brought up to date by the scheduler just before this tracepoint, so exact),
 * opens prev's run-queue wait if it was preempted or its D-state if it
 * blocked, and closes next's run-queue wait. Nothing is written at switch-in
 * unless next was waiting.
 */
static __always_inline int on_switch(struct task_struct *prev, struct task_struct *next, bool btf)
{
	/* the clock is read only where a time is kept (a VM's clock read costs ~20 ns) */
	__u32 prev_tid = fp_task_tid(prev, btf);
	__u32 next_tid = fp_task_tid(next, btf);

	if (prev_tid) {
		__u32 tgid = fp_task_tgid(prev, btf);
		/* an exiting task is not given new state: its last switch frees it */
		bool exiting = fp_task_exiting(prev, btf);
		struct fp_thread *t = fp_thread_of(prev, prev_tid, !exiting, btf);
		struct fp_proc *p = fp_proc_of(t, tgid, prev, true);
		__u32 state = fp_task_state(prev, btf);

		if (t) {
			__u64 rt = fp_task_runtime(prev, btf);
			__u64 f = fp_task_faults(prev, btf);

			/* plain updates: the tick cannot interrupt a switch */
			if (p && rt > t->runtime_ns)
				__sync_fetch_and_add(&p->cpu_ns, rt - t->runtime_ns);
			t->runtime_ns = rt;
			if (fp_runq_sched_info) {
				/* the wait before this run, added by the kernel at its arrival */
				__u64 pc = fp_task_pcount(prev, btf);

				if (pc > t->pcount) {
					__u64 rd = fp_task_run_delay(prev, btf);

					if (p && rd >= t->run_delay)
						account_runq_waits(p, rd - t->run_delay, pc - t->pcount);
					t->run_delay = rd;
					t->pcount = pc;
				}
			}
			if (f > t->faults) {
				if (p) {
					__sync_fetch_and_add(&p->page_faults, f - t->faults);
					fp_store_rss(p, prev, btf);
				}
				t->faults = f;
			}
			/* IO it caused (a dead thread's last charge: before on_dead sends the totals) */
			fp_charge_task_io(t, p, prev, btf);
		}
		if (state == FP_TASK_RUNNING) {
			/* preempted (or yielded): it is waiting on the run queue from now */
			if (p)
				__sync_fetch_and_add(&p->nivcsw, 1);
			if (t && !fp_runq_sched_info)
				t->enq_ns = bpf_ktime_get_ns();
		} else {
			if (p)
				__sync_fetch_and_add(&p->nvcsw, 1);
			if (exiting && state == FP_TASK_DEAD) {
				if (t)
					fp_thread_free(prev_tid, btf);
				on_dead(prev, tgid, p);
			}
			/* TASK_IDLE (D|NOLOAD) is how idle kthreads wait: not a stall */
			if (t && p && (state & FP_TASK_UNINTERRUPTIBLE) && !(state & FP_TASK_NOLOAD) &&
			    !t->dstate_ns) {
				__u64 now = bpf_ktime_get_ns();

				/* compare-and-swap: the seeder may mark this thread at the same moment */
				if (__sync_val_compare_and_swap(&t->dstate_ns, 0, now) == 0 &&
				    __sync_fetch_and_add(&p->dstate_active, 1) == 0)
					p->dstate_since_ns = now;
			}
		}
	}

	if (next_tid && fp_runq_sched_info) {
		/*
		 * Without wakeup stamps a D-state ends when the thread runs again
		 * (its run-queue wait after the wakeup included: microseconds
		 * against the seconds a D-state stall is about). Nothing else to
		 * do at switch-in but to meet a new thread at its first run, with
		 * its counters still at zero.
		 */
		struct fp_thread *t = fp_thread_of(next, next_tid, !fp_task_exiting(next, btf), btf);

		if (t && t->dstate_ns)
			end_dstate(fp_proc_of(t, fp_task_tgid(next, btf), next, false), t, bpf_ktime_get_ns());
	} else if (next_tid) {
		bool exiting = fp_task_exiting(next, btf);
		struct fp_thread *t = fp_thread_of(next, next_tid, !exiting, btf);

		if (t && t->enq_ns) {
			__u64 wait = bpf_ktime_get_ns() - t->enq_ns;
			__u32 tgid = fp_task_tgid(next, btf);
			struct fp_proc *p = fp_proc_of(t, tgid, next, true);

			t->enq_ns = 0;
			if (p)
				account_runq_wait(p, wait);
		}
	}
	/* who held this CPU while next waited (bpf/runq_blame.bpf.h) */
	fp_runq_blame_switch(prev, prev_tid, next, next_tid, btf);
	return 0;
}

FP_HOOK(sched_switch, on_switch(prev, next, fp_btf), bool preempt, struct task_struct *prev,
	struct task_struct *next)

/* A wakeup ends a D-state and starts a run-queue wait. */
static __always_inline int on_wakeup(struct task_struct *p, bool btf)
{
	__u32 tid = fp_task_tid(p, btf);
	__u64 now = bpf_ktime_get_ns();
	struct fp_thread *t;

	if (!tid)
		return 0;
	t = fp_thread_of(p, tid, !fp_task_exiting(p, btf), btf);
	if (!t)
		return 0;
	if (t->dstate_ns) {
		__u32 tgid = fp_task_tgid(p, btf);
		end_dstate(fp_proc_of(t, tgid, p, false), t, now);
	}
	t->enq_ns = now;
	return 0;
}

FP_HOOK(sched_wakeup, on_wakeup(p, fp_btf), struct task_struct *p)
FP_HOOK(sched_wakeup_new, on_wakeup(p, fp_btf), struct task_struct *p)

/* Fork creates the child's slot at once so that even a 1 ms child is counted. */
static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	struct fp_proc *pp = fp_proc_get(ptgid, parent, true);

	if (ptgid == ctgid) {
		if (pp)
			__sync_fetch_and_add(&pp->threads, 1);
		return 0;
	}
	if (pp)
		__sync_fetch_and_add(&pp->forks, 1);
	struct fp_proc *cp = fp_proc_get(ctgid, child, true);
	if (cp)
		cp->flags |= FP_PROC_EXEC_SEEN;
	return 0;
}

FP_HOOK(sched_process_fork, on_fork(parent, child), struct task_struct *parent,
	struct task_struct *child)

static __always_inline int on_exec(struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct fp_proc *p = fp_proc_get(tgid, task, true);

	if (!p)
		return 0;
	__sync_fetch_and_add(&p->execs, 1);
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->flags |= FP_PROC_EXEC_SEEN;
	p->cgroup_id = bpf_get_current_cgroup_id();
	return 0;
}

FP_HOOK(sched_process_exec, on_exec(p), struct task_struct *p, pid_t old_pid,
	struct linux_binprm *bprm)

/*
 * A thread's exit charges its CPU time so far (what the kernel adds to the
 * process's own total when it releases the thread). The process's final
 * counters go out at the last thread's final switch (on_dead), where the
 * scheduler has charged its very last run: a process that lived for a
 * millisecond is still accounted for, to the nanosecond, and the slot is
 * freed so the maps do not grow.
 */
static __always_inline int on_exit(struct task_struct *task, bool btf)
{
	__u32 tid = fp_task_tid(task, btf);
	__u32 tgid = fp_task_tgid(task, btf);
	struct fp_thread *t = fp_thread_of(task, tid, false, btf);
	struct fp_proc *p = fp_proc_of(t, tgid, task, false);

	if (t) {
		fp_charge_runtime(t, p, fp_task_runtime(task, btf));
		fp_charge_faults(t, p, task, btf, false);
		fp_charge_task_io(t, p, task, btf);
	}
	if (!p && tid == tgid && BPF_CORE_READ(task, signal, live.counter) == 0)
		fp_drop(FP_DROP_EXIT_UNSEEN); /* a process never seen running */
	return 0;
}

FP_HOOK(sched_process_exit, on_exit(p, fp_btf), struct task_struct *p)

/*
 * The final switch-out of a dead task (TASK_DEAD): when it is the last thread
 * of its process, send the final counters and free the slot. Two last threads
 * racing both get here: the one that frees the slot sends.
 */
/* on_dead packs a record here first: its length is known only once packed. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_exit_event);
} exit_scratch SEC(".maps");

/*
 * Reserves a record of `words` packed words (a constant at each call, as the
 * verifier wants), copies the packed record in and submits it, or counts
 * the drop. The slot is released in both cases (the process is gone); if
 * somebody else released it first, nothing is sent.
 */
#define FP_SEND_EXIT(words)                                                              \
	do {                                                                            \
		void *r = bpf_ringbuf_reserve(&events, FP_EXIT_EVENT_BYTES(words), 0);    \
		if (!r) {                                                               \
			fp_drop(FP_DROP_RINGBUF_FULL);                                  \
			fp_proc_release(tgid);                                          \
			return;                                                         \
		}                                                                       \
		__builtin_memcpy(r, e, FP_EXIT_EVENT_BYTES(words));                      \
		if (!fp_proc_release(tgid))                                             \
			bpf_ringbuf_discard(r, 0);                                      \
		else                                                                    \
			fp_emit_submit(r, code != 0);                                   \
		return;                                                                 \
	} while (0)

/*
 * The last thread of a process is gone: its final counters go out as an
 * exit record, packed (only the slot's non-zero words: most of a short-lived
 * process's slot is zero), in one of three lengths.
 */
static __always_inline void on_dead(struct task_struct *task, __u32 tgid, struct fp_proc *p)
{
	if (BPF_CORE_READ(task, signal, live.counter) != 0 || !p)
		return;

	__u32 code = BPF_CORE_READ(task, exit_code);
	__u32 zero = 0;
	struct fp_exit_event *e = bpf_map_lookup_elem(&exit_scratch, &zero);
	/* the name it dies with: prctl(PR_SET_NAME) renames are not seen otherwise */
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);

	bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), &leader->comm);
	if (!e) {
		fp_drop(FP_DROP_RINGBUF_FULL);
		fp_proc_release(tgid);
		return;
	}
	e->hdr.type = FP_EV_EXIT;
	e->hdr.tgid = tgid;
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.start_ns = p->start_ns;
	__builtin_memcpy(e->hdr.comm, p->comm, FP_COMM_LEN);
	e->exit_code = code;

	const __u64 *w = (const __u64 *)p;
	__u64 present0 = 0, present1 = 0;
	__u32 n = 0;

#pragma clang loop unroll(full)
	for (__u32 i = 0; i < FP_PROC_WORDS; i++) {
		__u64 v = w[i];

		if (!v)
			continue;
		if (i < 64)
			present0 |= 1ull << i;
		else
			present1 |= 1ull << (i - 64);
		if (n < FP_PROC_WORDS)
			e->words[n] = v;
		n++;
	}
	e->present[0] = present0;
	e->present[1] = present1;
	e->nwords = n;
	if (n <= 24)
		FP_SEND_EXIT(24);
	if (n <= 40)
		FP_SEND_EXIT(40);
	FP_SEND_EXIT(FP_PROC_WORDS);
}

/* khungtaskd's verdict (CONFIG_DETECT_HUNG_TASK): a task blocked beyond hung_task_timeout_secs. */
static __always_inline int on_hang(struct task_struct *task, bool btf)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	__u32 tid = BPF_CORE_READ(task, pid);
	struct fp_proc *p = fp_proc_get(tgid, task, false);
	struct fp_hang_event *e;

	e = fp_emit_reserve(sizeof(*e), FP_EV_HANG, tgid, p ? p->start_ns : 0, p ? p->comm : NULL);
	if (!e)
		return 0;
	e->tid = tid;
	e->_pad0 = 0;
	e->dstate_since_ns = 0;
	struct fp_thread *t = fp_thread_of(task, tid, false, btf);
	if (t)
		e->dstate_since_ns = t->dstate_ns;
	fp_emit_submit(e, true);
	return 0;
}

FP_HOOK(sched_process_hang, on_hang(tsk, fp_btf), struct task_struct *tsk)

/*
 * A per-CPU clock tick (software cpu-clock perf event, a few times a second):
 * a task that spins without ever being switched out would otherwise show no
 * CPU time until it stops. The tick charges the running task what the
 * scheduler has counted for it so far (brought up to date at every scheduler
 * tick). It runs in hard-IRQ context: never inside a switch, but possibly
 * inside a hook running in process context, hence fp_charge_runtime's CAS.
 * Two twins: task storage or the tid hash, whichever the hooks use.
 */
static __always_inline int on_tick(struct task_struct *task, struct fp_thread *t, __u64 pid_tgid,
				   bool btf)
{
	if (!t)
		return 0;
	struct fp_proc *p = fp_proc_of(t, pid_tgid >> 32, task, false);

	fp_charge_runtime(t, p, fp_task_runtime(task, btf));
	/* and the RSS of a task that never switches out (an allocating spinner) */
	fp_charge_faults(t, p, task, btf, true);
	/* and the IO of a writer that never blocks (page-cache writes below the dirty limits) */
	fp_charge_task_io(t, p, task, btf);
	return 0;
}

SEC("perf_event")
int cpu_clock_tick(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;

	if (!tid)
		return 0; /* idle */
	return on_tick((void *)bpf_get_current_task(), bpf_map_lookup_elem(&threads, &tid), pid_tgid, false);
}

SEC("perf_event")
int cpu_clock_tick_ts(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();

	if (!(__u32)pid_tgid)
		return 0; /* idle */
	return on_tick(task, bpf_task_storage_get(&thread_ts, task, 0, 0), pid_tgid, true);
}
