// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Writeback family: the time a task spends throttled in dirty-page balancing.
 * A task that dirties page cache faster than its device writes it back is
 * made to sleep in balance_dirty_pages() (io_schedule_timeout(pause), in
 * TASK_KILLABLE: it shows as D-state too). writeback:balance_dirty_pages
 * fires in that task just before the sleep, with the pause it is about to
 * take: the stall is that task's, as direct reclaim's is the allocator's.
 */
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * A classic tracepoint: the record gives the pause in ms whatever HZ is
 * (the raw arguments are jiffies), read with CO-RE (fp_dirty_pause_ms). It
 * fires only when a writer is over its share of the dirty limits, a few
 * times a second per throttled writer at most.
 */
SEC("tracepoint/writeback/balance_dirty_pages")
int tp_balance_dirty_pages(struct trace_event_raw_balance_dirty_pages *ctx)
{
	__s64 pause_ms = fp_dirty_pause_ms(ctx);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct fp_proc *p;

	if (pause_ms <= 0)
		return 0; /* within its limits for now: no sleep (the kernel traces min(pause, 0)) */
	p = fp_proc_get(pid_tgid >> 32, (void *)bpf_get_current_task(), true);
	if (!p)
		return 0;
	__sync_fetch_and_add(&p->dirty_throttle_ns, (__u64)pause_ms * 1000000);
	__sync_fetch_and_add(&p->dirty_throttles, 1);
	return 0;
}
