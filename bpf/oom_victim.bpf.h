/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * OOM victims are named by the thread the kernel marked (oom:mark_victim
 * carries its pid), which is not its process's leader when the leader has
 * exited or the marked thread was the one allocating. Where the kernel does
 * not let a program look a thread up by id (bpf_task_from_pid is 6.2+, and not
 * for classic tracepoints), the process is found from what the OOM killer did
 * just before marking: it sends the victim SIGKILL (signal_generate sees the
 * task) under the victim's task lock, on the same CPU, or marks the
 * allocating task itself (current). A thread id that matches neither is left
 * to userspace (/proc/TID/status), flagged FP_OOM_TGID_UNRESOLVED.
 */
#ifndef FAULTPROBE_OOM_VICTIM_BPF_H
#define FAULTPROBE_OOM_VICTIM_BPF_H

#include "common.bpf.h"

struct fp_sigkill_target {
	__u32 tid;
	__u32 tgid;
};

/* The last SIGKILL generated on each CPU: its target thread and process. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_sigkill_target);
} sigkill_target SEC(".maps") __weak;

static __always_inline void fp_note_sigkill(__u32 tid, __u32 tgid)
{
	__u32 zero = 0;
	struct fp_sigkill_target *k = bpf_map_lookup_elem(&sigkill_target, &zero);

	if (k) {
		k->tid = tid;
		k->tgid = tgid;
	}
}

/* The process of the thread `tid` the OOM killer marked; *how is FP_OOM_TGID_*. */
static __always_inline __u32 fp_oom_victim_tgid(__u32 tid, __u32 *how)
{
	__u64 cur = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct fp_sigkill_target *k;

	if (bpf_map_lookup_elem(&proc_index, &tid)) {
		/* a process's slot is keyed by its leader's id: tid is that leader */
		*how = FP_OOM_TGID_SAME;
		return tid;
	}
	if ((__u32)cur == tid) {
		*how = FP_OOM_TGID_CURRENT;
		return cur >> 32;
	}
	k = bpf_map_lookup_elem(&sigkill_target, &zero);
	if (k && k->tid == tid) {
		*how = FP_OOM_TGID_SIGKILL;
		return k->tgid;
	}
	*how = FP_OOM_TGID_UNRESOLVED;
	return tid;
}

#endif /* FAULTPROBE_OOM_VICTIM_BPF_H */
