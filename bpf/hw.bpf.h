/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the hardware family (hw.bpf.c) shares with the block family: a failed
 * request's submitter is only known to block_rq_complete, which runs just
 * before block_rq_error in blk_update_request() and deletes the in-flight
 * entry. It hands the submitter over through a per-CPU slot keyed by the
 * request pointer; on kernels without block_rq_error the loader sets
 * fp_disk_err_from_complete and block_rq_complete emits the event itself.
 */
#ifndef FAULTPROBE_HW_BPF_H
#define FAULTPROBE_HW_BPF_H

#include "common.bpf.h"

struct fp_disk_handoff {
	__u64 rq;
	__u32 tgid;
	__u32 op;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fp_disk_handoff);
} disk_handoff SEC(".maps") __weak;

/* Set by the loader when the kernel has no block_rq_error (defined in hw.bpf.c). */
extern const volatile __u32 fp_disk_err_from_complete;

static __always_inline void fp_emit_disk_error(struct request *rq, int error, unsigned int nr_bytes,
					       __u32 tgid, __u32 op, __u32 source)
{
	struct fp_proc *p = tgid ? fp_proc_get(tgid, NULL, false) : NULL;
	struct fp_disk_event *e = fp_emit_reserve(sizeof(*e), FP_EV_HW_DISK, tgid, p ? p->start_ns : 0,
						  p ? p->comm : NULL);
	struct gendisk *disk;

	if (!e)
		return;
	disk = fp_rq_disk(rq);
	e->sector = BPF_CORE_READ(rq, __sector);
	e->major = disk ? BPF_CORE_READ(disk, major) : 0;
	e->minor = disk ? BPF_CORE_READ(disk, first_minor) : 0;
	e->error = error;
	e->nr_bytes = nr_bytes;
	e->op = op;
	e->source = source;
	e->submitter_known = tgid != 0;
	e->_pad0 = 0;
	if (disk)
		bpf_probe_read_kernel_str(e->disk, sizeof(e->disk), &disk->disk_name);
	else
		e->disk[0] = 0;
	bpf_ringbuf_submit(e, 0);
}

/* block_rq_complete saw a failed request: hand it over or report it. */
static __always_inline void fp_disk_error_at_complete(struct request *rq, int error, unsigned int nr_bytes,
						      __u32 tgid, __u32 op)
{
	__u32 zero = 0;
	struct fp_disk_handoff *h;

	if (fp_disk_err_from_complete) {
		fp_emit_disk_error(rq, error, nr_bytes, tgid, op, FP_DISK_FROM_RQ_COMPLETE);
		return;
	}
	h = bpf_map_lookup_elem(&disk_handoff, &zero);
	if (h) {
		h->rq = (__u64)rq;
		h->tgid = tgid;
		h->op = op;
	}
}

#endif /* FAULTPROBE_HW_BPF_H */
