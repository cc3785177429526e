/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Run-queue blame: who held a CPU while others waited on it (the layout is
 * in abi.h). Called from sched_switch only.
 *
 * A task's wait on a run queue is known exactly when it ends: the kernel
 * stamps sched_info.last_queued when the task is queued on a CPU and reads
 * it at the task's next arrival, right after this tracepoint (both on the
 * run queue's own clock, rq->clock). So at a switch, `next` has waited
 * rq->clock - last_queued on this CPU. The wait is charged to who ran here
 * meanwhile: `prev` since its own arrival (sched_info.last_arrival), and,
 * further back, the CPU's recent runs, which each CPU remembers in a small
 * ring only while somebody waits (rq->nr_running >= 2 at the switch: a
 * later waiter can only have waited through a run that ended with it
 * queued). What the ring does not reach back to is charged to nobody.
 *
 * Cost: a switch where nobody waits (the usual one) reads five fields
 * (next's run queue, its length and clock, next's last_queued) and returns.
 * Waits shorter than FP_RUNQ_BLAME_MIN_WAIT_NS are not charged: starvation
 * is about tens of milliseconds, and every wakeup waits a few microseconds.
 * A charge touches only this CPU's own table (no hash, no lock, no atomics:
 * sched_switch runs with interrupts off and nobody else writes it).
 */
#ifndef FAULTPROBE_RUNQ_BLAME_BPF_H
#define FAULTPROBE_RUNQ_BLAME_BPF_H

#include "common.bpf.h"

/* Set by the loader: sched_info is kept (fp_runq_sched_info) and blame is wanted. */
extern const volatile bool fp_runq_blame;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_runq_cpu);
} runq_cpu SEC(".maps");

static __always_inline __u64 fp_task_last_queued(struct task_struct *task, bool btf)
{
	if (!bpf_core_field_exists(task->sched_info.last_queued))
		return 0;
	return btf ? task->sched_info.last_queued : BPF_CORE_READ(task, sched_info.last_queued);
}

static __always_inline __u64 fp_task_last_arrival(struct task_struct *task, bool btf)
{
	if (!bpf_core_field_exists(task->sched_info.last_arrival))
		return 0;
	return btf ? task->sched_info.last_arrival : BPF_CORE_READ(task, sched_info.last_arrival);
}

/* prev's run that ends now, with its scheduling class as it ran. */
static __always_inline void fp_runq_run_of(struct fp_runq_run *r, struct task_struct *task, __u32 tid,
					   __u64 now, bool btf)
{
	r->tgid = fp_task_tgid(task, btf);
	r->tid = tid;
	r->start_ns = fp_task_last_arrival(task, btf);
	r->end_ns = now;
	r->policy = btf ? task->policy : BPF_CORE_READ(task, policy);
	r->rt_priority = btf ? task->rt_priority : BPF_CORE_READ(task, rt_priority);
	r->static_prio = btf ? task->static_prio : BPF_CORE_READ(task, static_prio);
	r->_pad0 = 0;
}

/*
 * The slot of `tgid` in this CPU's table: where it is among its probe
 * positions, else a free one there, else the least recently charged one
 * there (a drop when that one was charged less than FP_RUNQ_KEEP_NS ago).
 * A subprogram: the walk below calls it from a loop.
 */
static __noinline struct fp_runq_slot *fp_runq_slot_of(struct fp_runq_cpu *c, __u32 tgid, __u64 now)
{
	__u32 h = (tgid * 2654435761u) >> 25; /* 7 bits: FP_RUNQ_SLOTS */
	__u32 victim = h & (FP_RUNQ_SLOTS - 1);
	__u64 oldest = ~0ull;

	if (!c)
		return NULL;
	for (__u32 i = 0; i < FP_RUNQ_PROBES; i++) {
		__u32 idx = (h + i) & (FP_RUNQ_SLOTS - 1);
		struct fp_runq_slot *s = &c->slot[idx];

		if (s->tgid == tgid)
			return s;
		/* a free slot is the oldest of all */
		__u64 t = s->tgid ? s->touched_ns : 0;

		if (t < oldest) {
			oldest = t;
			victim = idx;
		}
	}
	struct fp_runq_slot *s = &c->slot[victim & (FP_RUNQ_SLOTS - 1)];

	if (s->tgid && now - s->touched_ns < FP_RUNQ_KEEP_NS)
		fp_drop(FP_DROP_RUNQ_SLOT_TAKEN);
	/* counters first, owner last: a reader that sees the new owner sees them reset */
	s->caused_ns = 0;
	s->waited_ns = 0;
	s->waits = 0;
	s->tid = 0;
	s->policy = 0;
	s->rt_priority = 0;
	s->static_prio = 0;
	s->_pad0 = 0;
	s->touched_ns = now;
	asm volatile("" ::: "memory");
	s->tgid = tgid;
	return s;
}

/* Charges `ns` of a wait on this CPU to the runner `r` (nobody for tgid 0). */
static __always_inline void fp_runq_charge(struct fp_runq_cpu *c, const struct fp_runq_run *r, __u64 ns,
					   __u64 now)
{
	if (!c)
		return;
	if (!r->tgid) {
		c->unknown_ns += ns;
		return;
	}
	struct fp_runq_slot *s = fp_runq_slot_of(c, r->tgid, now);

	if (!s)
		return;
	s->caused_ns += ns;
	s->touched_ns = now;
	s->tid = r->tid;
	s->policy = r->policy;
	s->rt_priority = r->rt_priority;
	s->static_prio = r->static_prio;
}

/*
 * Charges next's wait [queued, now]: to prev for its run (when it has one),
 * then to the ring's runs newest first, what is left to nobody; and counts
 * it as next's own wait here.
 */
static __always_inline void fp_runq_settle(struct fp_runq_cpu *c, const struct fp_runq_run *prev, __u32 next_tgid,
					   __u64 queued, __u64 now)
{
	__u64 upto = now; /* the part of the wait before `upto` is still to be charged */
	__u64 charged = 0;

	if (prev->tgid) {
		__u64 from = prev->start_ns > queued ? prev->start_ns : queued;

		fp_runq_charge(c, prev, upto - from, now);
		charged += upto - from;
		upto = from;
	}
	for (int i = 0; i < FP_RUNQ_RING && upto > queued; i++) {
		struct fp_runq_run *r = &c->ring[(c->ring_head - 1 - i) & (FP_RUNQ_RING - 1)];
		__u64 from = r->start_ns > queued ? r->start_ns : queued;
		__u64 to = r->end_ns < upto ? r->end_ns : upto;

		if (r->end_ns <= queued)
			break;
		if (to > from) {
			fp_runq_charge(c, r, to - from, now);
			charged += to - from;
		}
		if (from < upto)
			upto = from;
	}
	if (now - queued > charged)
		c->unknown_ns += now - queued - charged;
	struct fp_runq_slot *s = fp_runq_slot_of(c, next_tgid, now);

	if (s) {
		s->waited_ns += now - queued;
		s->waits += 1;
		s->touched_ns = now;
	}
}

static __always_inline void fp_runq_blame_switch(struct task_struct *prev, __u32 prev_tid,
						 struct task_struct *next, __u32 next_tid, bool btf)
{
	if (!fp_runq_blame)
		return;
	/* next is on this CPU's run queue (the idle task too) */
	struct rq *rq = fp_task_rq(next, btf);

	if (!rq)
		return;
	__u32 nr = btf ? rq->nr_running : BPF_CORE_READ(rq, nr_running);
	__u64 now = btf ? rq->clock : BPF_CORE_READ(rq, clock);
	__u64 queued = next_tid ? fp_task_last_queued(next, btf) : 0;
	bool waited = queued && now > queued && now - queued >= FP_RUNQ_BLAME_MIN_WAIT_NS;

	if (nr < 2 && !waited)
		return; /* nobody waits here, and next did not */

	__u32 zero = 0;
	struct fp_runq_cpu *c = bpf_map_lookup_elem(&runq_cpu, &zero);
	struct fp_runq_run run = {};

	if (!c)
		return;
	/* the idle task, or a run without an arrival stamp, is nobody's */
	if (prev_tid)
		fp_runq_run_of(&run, prev, prev_tid, now, btf);
	if (run.start_ns == 0 || run.start_ns > now)
		run.tgid = 0;
	if (waited)
		fp_runq_settle(c, &run, fp_task_tgid(next, btf), queued, now);
	if (nr < 2 || !run.tgid)
		return;
	/* someone still waits: remember prev's run (consecutive runs of one process as one) */
	struct fp_runq_run *newest = &c->ring[(c->ring_head - 1) & (FP_RUNQ_RING - 1)];

	if (c->ring_head && newest->tgid == run.tgid) {
		newest->end_ns = now;
		return;
	}
	c->ring[c->ring_head & (FP_RUNQ_RING - 1)] = run;
	c->ring_head++;
}

#endif /* FAULTPROBE_RUNQ_BLAME_BPF_H */
