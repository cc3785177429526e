/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every kernel-version difference the probe cares about lives here, each
 * resolved with CO-RE relocations (never #if on a kernel version).
 */
#ifndef FAULTPROBE_CORE_FIXES_BPF_H
#define FAULTPROBE_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

/* Constants that are #defines in the kernel and so absent from BTF. */
#define FP_TASK_RUNNING 0x0000
#define FP_TASK_UNINTERRUPTIBLE 0x0002
#define FP_TASK_DEAD 0x0080
#define FP_TASK_NOLOAD 0x0400
#define FP_PF_EXITING 0x00000004
#define FP_PF_KTHREAD 0x00200000
#define FP_REQ_OP_MASK 0xff
#define FP_REQ_OP_READ 0
#define FP_REQ_OP_WRITE 1

/* v5.14 renamed task_struct::state to __state (and made it unsigned int). */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/*
 * `btf`: the caller is a tp_btf (or BTF-task) program, whose task pointer is
 * BTF-typed: fields are plain loads (the verifier turns them into
 * fault-safe loads), where BPF_CORE_READ costs a bpf_probe_read_kernel call
 * each (~10-20 ns on the hot hooks). A constant per program: the other
 * branch is compiled out.
 */
static __always_inline __u32 fp_task_state(struct task_struct *t, bool btf)
{
	if (bpf_core_field_exists(t->__state))
		return btf ? t->__state : BPF_CORE_READ(t, __state);
	struct task_struct___pre514 *old = (void *)t;

	return (__u32)(btf ? old->state : BPF_CORE_READ(old, state));
}

/*
 * v6.2 turned mm_struct::rss_stat from struct mm_rss_stat { atomic_long_t
 * count[NR_MM_COUNTERS]; } into struct percpu_counter rss_stat[NR_MM_COUNTERS].
 * For the percpu form we read the shared `count`, which is what the
 * kmem:rss_stat tracepoint itself reports (percpu_counter_read_positive):
 * exact up to the per-CPU batch.
 */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

static __always_inline __s64 fp_mm_counter(struct mm_struct *mm, int member)
{
	__s64 v = 0;

	if (member < 0 || member >= 4)
		return 0;
	struct mm_struct___pre62 *old = (void *)mm;

	/* The flavor's rss_stat is a struct: it only matches the pre-6.2 layout. */
	if (bpf_core_field_exists(old->rss_stat)) {
		v = BPF_CORE_READ(old, rss_stat.count[member].counter);
	} else {
		struct percpu_counter *pc = &mm->rss_stat[member];
		bpf_core_read(&v, sizeof(v), &pc->count);
	}
	return v < 0 ? 0 : v;
}

/*
 * The resident set of `mm` per mm counter (pages), as fp_mm_counter, with
 * constant indices so that a BTF-typed `mm` is read with plain loads.
 */
static __always_inline __s64 fp_rss_clamp(__s64 v)
{
	return v < 0 ? 0 : v;
}

/*
 * Each layout's reads live in a subprogram of their own, called only on the
 * branch CO-RE keeps: inlined, clang computes both layouts' addresses before
 * the test (if-conversion), and the one that does not exist on this kernel
 * is a poisoned relocation the verifier then meets on the live path.
 */
/*
 * Read through bpf_probe_read_kernel even from tp_btf: the 6.1 verifier does
 * not walk into an array of atomic_long_t (a typedef) with plain loads
 * ("Type 'atomic_long_t' is not a struct").
 */
static __noinline void fp_mm_rss_pre62(struct mm_struct___pre62 *old, __s64 *out)
{
	out[0] = fp_rss_clamp(BPF_CORE_READ(old, rss_stat.count[0].counter));
	out[1] = fp_rss_clamp(BPF_CORE_READ(old, rss_stat.count[1].counter));
	out[2] = fp_rss_clamp(BPF_CORE_READ(old, rss_stat.count[2].counter));
	out[3] = fp_rss_clamp(BPF_CORE_READ(old, rss_stat.count[3].counter));
}

static __noinline void fp_mm_rss_percpu(struct mm_struct *mm, bool btf, __s64 *out)
{
	if (btf) {
		out[0] = fp_rss_clamp(mm->rss_stat[0].count);
		out[1] = fp_rss_clamp(mm->rss_stat[1].count);
		out[2] = fp_rss_clamp(mm->rss_stat[2].count);
		out[3] = fp_rss_clamp(mm->rss_stat[3].count);
	} else {
		out[0] = fp_rss_clamp(BPF_CORE_READ(mm, rss_stat[0].count));
		out[1] = fp_rss_clamp(BPF_CORE_READ(mm, rss_stat[1].count));
		out[2] = fp_rss_clamp(BPF_CORE_READ(mm, rss_stat[2].count));
		out[3] = fp_rss_clamp(BPF_CORE_READ(mm, rss_stat[3].count));
	}
}

static __always_inline void fp_mm_rss(struct mm_struct *mm, bool btf, __s64 *out)
{
	struct mm_struct___pre62 *old = (void *)mm;

	if (bpf_core_field_exists(old->rss_stat))
		fp_mm_rss_pre62(old, out);
	else
		fp_mm_rss_percpu(mm, btf, out);
}

/*
 * task_struct::ioac's read_bytes, write_bytes and cancelled_write_bytes exist
 * only with CONFIG_TASK_IO_ACCOUNTING (ioac itself with CONFIG_TASK_XACCT):
 * zeros without (the loader then leaves fp_task_io off and says so).
 */
static __always_inline void fp_task_io_read(struct task_struct *t, bool btf, __u64 *rd, __u64 *wr, __u64 *cw)
{
	if (!bpf_core_field_exists(t->ioac.write_bytes)) {
		*rd = *wr = *cw = 0;
		return;
	}
	if (btf) {
		*rd = t->ioac.read_bytes;
		*wr = t->ioac.write_bytes;
		*cw = t->ioac.cancelled_write_bytes;
	} else {
		/* one copy instead of three: the three are adjacent in every version */
		__u64 v[3] = {};

		bpf_core_read(v, sizeof(v), &t->ioac.read_bytes);
		*rd = v[0];
		*wr = v[1];
		*cw = v[2];
	}
}

/*
 * writeback:balance_dirty_pages's record: `pause` (long, ms: the sleep about
 * to be taken, <= 0 when there is none) and `period` are in every kernel
 * since v3.2 (6.1 and 6.18 alike); the fields around them were renamed
 * (bdi_setpoint/bdi_dirty became wb_setpoint/wb_dirty in v6.x), so they are
 * read by name.
 */
static __always_inline __s64 fp_dirty_pause_ms(struct trace_event_raw_balance_dirty_pages *ctx)
{
	if (!bpf_core_field_exists(ctx->pause))
		return 0;
	return BPF_CORE_READ(ctx, pause);
}

/* mm_struct::owner exists only with CONFIG_MEMCG. */
static __always_inline struct task_struct *fp_mm_owner(struct mm_struct *mm)
{
	if (bpf_core_field_exists(mm->owner))
		return BPF_CORE_READ(mm, owner);
	return NULL;
}

/* v5.5 made kernfs_node::id a u64 (before: union kernfs_node_id). */
static __always_inline __u64 fp_task_cgroup_id(struct task_struct *t)
{
	if (bpf_core_field_size(((struct kernfs_node *)0)->id) == 8)
		return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	return 0;
}

/*
 * oom:mark_victim grew total_vm/anon_rss/file_rss/shmem_rss in v5.16 and uid
 * in v6.8; only pid is everywhere.
 */
static __always_inline void fp_read_mark_victim(struct trace_event_raw_mark_victim *ctx,
						__u32 *pid, __u64 *total_vm, __u64 *anon,
						__u64 *file, __u64 *shmem)
{
	*pid = BPF_CORE_READ(ctx, pid);
	*total_vm = *anon = *file = *shmem = 0;
	if (bpf_core_field_exists(ctx->total_vm)) {
		*total_vm = BPF_CORE_READ(ctx, total_vm);
		*anon = BPF_CORE_READ(ctx, anon_rss);
		*file = BPF_CORE_READ(ctx, file_rss);
		*shmem = BPF_CORE_READ(ctx, shmem_rss);
	}
}

/* v5.16 dropped request::rq_disk: the disk is request->q->disk since. */
struct request___pre516 {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline struct gendisk *fp_rq_disk(struct request *rq)
{
	struct request___pre516 *old = (void *)rq;

	if (bpf_core_field_exists(old->rq_disk))
		return BPF_CORE_READ(old, rq_disk);
	return BPF_CORE_READ(rq, q, disk);
}

/*
 * The run queue a task is on, through its CFS entity's queue
 * (task->se.cfs_rq->rq, which set_task_cpu keeps current for every class),
 * since the per-CPU `runqueues` variable is out of reach where the kernel
 * has no CONFIG_KALLSYMS_ALL (the verifier cannot find its address). Needs
 * CONFIG_FAIR_GROUP_SCHED (cfs_rq::rq); NULL without it.
 */
static __always_inline struct rq *fp_task_rq(struct task_struct *task, bool btf)
{
	if (!bpf_core_field_exists(task->se.cfs_rq) || !bpf_core_field_exists(((struct cfs_rq *)0)->rq))
		return NULL;
	return btf ? task->se.cfs_rq->rq : BPF_CORE_READ(task, se.cfs_rq, rq);
}

/*
 * tcp:tcp_retransmit_skb grew an `err` argument in recent kernels (6.18 has
 * it, 6.1 and 6.12 do not) and since fires for attempts that failed too
 * (the packet did not go out); before, it fired only for sent packets. The
 * record's `err` field tells which prototype this kernel has. The load is
 * volatile so that it stays behind the check: on a kernel without the
 * argument the verifier never sees it (ctx[2] would be past the arguments).
 */
static __always_inline int fp_retransmit_err(unsigned long long *ctx)
{
	if (bpf_core_field_exists(((struct trace_event_raw_tcp_retransmit_skb *)0)->err))
		return (int)((volatile unsigned long long *)ctx)[2];
	return 0;
}

/*
 * skb:kfree_skb's drop reason (v5.17+): enum skb_drop_reason, whose numbers
 * moved (v6.0 put SKB_NOT_DROPPED_YET first, v6.2 added SKB_CONSUMED; v6.4
 * subsystem reasons in the high bits), so the floor comes from the running
 * kernel's BTF. A drop is counted when its reason says more than
 * NOT_SPECIFIED and is not SKB_CONSUMED (a packet used up, not lost), nor
 * a socket's teardown: QUEUE_PURGE (v6.10: what a closing socket still had
 * queued; a loopback HTTP load makes one per connection) and SOCKET_CLOSE
 * (v6.11: unread data at close), the process's own choice, not the network's.
 */
/*
 * The value of an enumerator the running kernel may lack is read in a
 * subprogram of its own, called only where it exists: inlined, clang may
 * load the value before the test, and a missing one is a poisoned
 * relocation the verifier then meets on the live path (6.1 has none of these three).
 */
static __noinline bool fp_reason_is_consumed(__u32 reason)
{
	return reason == (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED);
}

static __noinline bool fp_reason_is_queue_purge(__u32 reason)
{
	return reason == (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE);
}

static __noinline bool fp_reason_is_socket_close(__u32 reason)
{
	return reason == (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_CLOSE);
}

/* NOT_SPECIFIED exists wherever skb:kfree_skb has a reason (the loader loads the hook only there). */
static __always_inline bool fp_drop_reason_counted(__u32 reason)
{
	if (reason <= (__u32)bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return false;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) && fp_reason_is_consumed(reason))
		return false;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_QUEUE_PURGE) &&
	    fp_reason_is_queue_purge(reason))
		return false;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_CLOSE) &&
	    fp_reason_is_socket_close(reason))
		return false;
	return true;
}

/*
 * v6.11 gave skb:kfree_skb a fourth argument, rx_sk: the socket a received
 * packet was for, where the drop happens before the skb is charged to it
 * (skb->sk is still NULL: TCP and UDP receive-side drops). NULL before.
 */
static __always_inline __u64 fp_kfree_skb_rx_sk(unsigned long long *ctx)
{
	if (bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->rx_sk))
		return ((volatile unsigned long long *)ctx)[3];
	return 0;
}

#endif /* FAULTPROBE_CORE_FIXES_BPF_H */
