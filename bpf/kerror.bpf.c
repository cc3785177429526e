// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kernel-error family: the kernel's own error reports. error_report_end
 * (v5.14+) fires once per report of a kernel error detector, after the
 * report is printed: KFENCE and KASAN (a bad memory access) and, on newer
 * kernels, WARN. It is a family of its own and not part of the hardware
 * family: what failed is the kernel's code, not a device, and the process
 * in whose context the report was made is named (hardware events have no
 * such process) but not blamed; nor is it the signal family, whose events
 * are things done to a process.
 *
 * Rare by nature (one per bug hit), so every report goes to the ring buffer
 * as it is; userspace names the detector from the kernel's BTF (the enum
 * grows). Optional: the loader turns the program off where tracefs does not
 * list the tracepoint.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * What the current task is. Interrupt context is not told: the CPU's preempt
 * count is a per-CPU variable (__preempt_count, or pcpu_hot on v6.2..v6.14)
 * that a program reaches only as a typed ksym, and the verifier finds its
 * address through kallsyms, which lists per-CPU variables only with
 * CONFIG_KALLSYMS_ALL (6.18 here: "ldimm64 failed to find the address for
 * kernel symbol '__preempt_count'", the whole probe refused). The event says
 * so (FP_KERR_IRQ_KNOWN unset) and userspace reports it.
 */
static __always_inline __u32 fp_kerror_context(struct task_struct *task, __u32 *flags)
{
	*flags = 0;
	return (BPF_CORE_READ(task, flags) & FP_PF_KTHREAD) ? FP_KERR_CTX_KTHREAD : FP_KERR_CTX_TASK;
}

static __always_inline int on_error_report(__u32 detector, __u64 id)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, flags = 0;
	__u32 context = fp_kerror_context(task, &flags);
	struct fp_proc *p = NULL;
	struct fp_kerror_event *e;

	/*
	 * Counted on the process whose thread made the report, not on one an
	 * interrupt happened to land on (the event still names it), where the
	 * context is known.
	 */
	if (tgid != 0 && context <= FP_KERR_CTX_KTHREAD) {
		p = fp_proc_get(tgid, task, true);
		if (p)
			__sync_fetch_and_add(&p->kernel_errors, 1);
	} else if (tgid != 0) {
		p = fp_proc_get(tgid, NULL, false);
	}
	e = fp_emit_reserve(sizeof(*e), FP_EV_KERNEL_ERROR, tgid, p ? p->start_ns : 0, p ? p->comm : NULL);
	if (!e)
		return 0;
	e->id = id;
	e->detector = detector;
	e->tid = (__u32)pid_tgid;
	e->context = context;
	e->flags = flags;
	bpf_get_current_comm(e->task_comm, sizeof(e->task_comm));
	if (!p) /* no slot (idle task, interrupt on a process not seen yet): the thread's comm */
		__builtin_memcpy(e->hdr.comm, e->task_comm, FP_COMM_LEN);
	fp_emit_submit(e, true);
	return 0;
}

FP_HOOK(error_report_end, on_error_report(error_detector, id), unsigned int error_detector,
	unsigned long id)
