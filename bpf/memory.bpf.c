// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Memory family: direct-reclaim stalls and OOM victims (page faults and RSS
 * are read at switch-out, see below).
 */
#include "common.bpf.h"
#include "oom_victim.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Direct reclaim runs in the allocating task: the stall is that task's. */
static __always_inline int on_reclaim_begin(bool btf)
{
	struct fp_thread *t = fp_current_thread(true, btf);

	if (t)
		t->reclaim_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_reclaim_end(bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct fp_thread *t = fp_current_thread(false, btf);
	struct fp_proc *p;

	if (!t || !t->reclaim_ns)
		return 0;
	p = fp_proc_of(t, pid_tgid >> 32, (void *)bpf_get_current_task(), true);
	if (p) {
		__sync_fetch_and_add(&p->reclaim_ns, bpf_ktime_get_ns() - t->reclaim_ns);
		__sync_fetch_and_add(&p->reclaims, 1);
	}
	t->reclaim_ns = 0;
	return 0;
}

FP_HOOK(mm_vmscan_direct_reclaim_begin, on_reclaim_begin(fp_btf), int order, gfp_t gfp_flags)
FP_HOOK(mm_vmscan_direct_reclaim_end, on_reclaim_end(fp_btf), unsigned long nr_reclaimed)

/*
 * Page faults and the resident set are not hooked here: the scheduler family
 * reads the kernel's own per-task fault counters and the mm's RSS counters
 * when a thread that faulted switches out, at its exit and at the CPU tick
 * (fp_charge_faults), instead of a program on every fault and every RSS
 * counter change.
 */

/*
 * oom:mark_victim is rare and its arguments changed shape across versions
 * (int pid until v6.8, then task + uid): the classic tracepoint's record,
 * read with CO-RE, is stable. The pid is the thread the kernel marked: the
 * victim is its process (oom_victim.bpf.h).
 */
SEC("tracepoint/oom/mark_victim")
int tp_mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	__u32 tid, tgid, how;
	__u64 total_vm, anon, file, shmem;
	struct fp_proc *p;
	struct fp_oom_event *e;

	fp_read_mark_victim(ctx, &tid, &total_vm, &anon, &file, &shmem);
	tgid = fp_oom_victim_tgid(tid, &how);
	p = fp_proc_get(tgid, NULL, false);
	if (p)
		__sync_fetch_and_add(&p->oom_victim, 1);
	e = fp_emit_reserve(sizeof(*e), FP_EV_OOM_VICTIM, tgid, p ? p->start_ns : 0,
			    p ? p->comm : NULL);
	if (!e)
		return 0;
	e->total_vm_kb = total_vm;
	e->anon_rss_kb = anon;
	e->file_rss_kb = file;
	e->shmem_rss_kb = shmem;
	e->tid = tid;
	e->tgid_from = how;
	fp_emit_submit(e, true);
	return 0;
}
