// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Signal family: fatal signals generated for a process. signal_generate sees
 * the signal at the moment it is sent, with sender and target, before the
 * target dies; the exit event later confirms what it did.
 */
#include "common.bpf.h"
#include "oom_victim.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FP_SIGILL 4
#define FP_SIGABRT 6
#define FP_SIGBUS 7
#define FP_SIGFPE 8
#define FP_SIGKILL 9
#define FP_SIGSEGV 11
#define FP_SIGSYS 31

static __always_inline bool fatal_class(int sig)
{
	return sig == FP_SIGSEGV || sig == FP_SIGBUS || sig == FP_SIGILL || sig == FP_SIGFPE ||
	       sig == FP_SIGABRT || sig == FP_SIGKILL || sig == FP_SIGSYS;
}

static __always_inline int on_signal(int sig, struct kernel_siginfo *info, struct task_struct *task,
				     int result)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);

	/* whatever its result: the OOM killer marks its victim right after (oom_victim.bpf.h) */
	if (sig == FP_SIGKILL)
		fp_note_sigkill(BPF_CORE_READ(task, pid), tgid);
	/* TRACE_SIGNAL_IGNORED (2) and later results: the signal did nothing */
	if (!fatal_class(sig) || result > 1)
		return 0;

	struct fp_proc *p = fp_proc_get(tgid, task, true);
	struct fp_signal_event *e;

	if (p) {
		__sync_fetch_and_add(&p->fatal_signals, 1);
		p->last_fatal_sig = sig;
	}
	e = fp_emit_reserve(sizeof(*e), FP_EV_FATAL_SIGNAL, tgid, p ? p->start_ns : 0,
			    p ? p->comm : NULL);
	if (!e)
		return 0;
	e->sig = sig;
	e->tid = BPF_CORE_READ(task, pid);
	e->sender_tgid = bpf_get_current_pid_tgid() >> 32;
	e->result = result;
	e->code = info ? BPF_CORE_READ(info, si_code) : 0;
	e->_pad0 = 0;
	fp_emit_submit(e, true);
	return 0;
}

FP_HOOK(signal_generate, on_signal(sig, info, task, result), int sig, struct kernel_siginfo *info,
	struct task_struct *task, int group, int result)
