// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Block IO family: requests, latency, errors and bytes per process, charged
 * to the process that submitted the request (the bytes a process caused,
 * buffered writes included, come from the kernel's task IO accounting: see
 * fp_charge_task_io). Completion runs in interrupt or
 * kworker context, so the submitter is captured when the request starts
 * (block_io_start where the kernel has it, v6.5+; block_rq_insert, or
 * block_rq_issue for requests that go straight to the driver) and looked up
 * by request pointer when it completes.
 *
 * Bio-based devices (device-mapper, md) have no requests of their own: a
 * target may hold a bio and send it on later from a kernel thread (dm-delay,
 * dm-crypt), or fail it without any lower device (dm-error, dm-flakey). Their
 * bios are followed from block_bio_queue (the submitter's context) to
 * block_bio_complete, for requests, latency, errors and the device; their bytes
 * are counted where they reach a request-based device, so a stack never
 * counts them twice (its request counts do include both levels).
 */
#include "common.bpf.h"
#include "hw.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Every read below is a plain load in the tp_btf twin (`btf`, a constant per
 * program: BTF-typed arguments) and bpf_probe_read_kernel in the raw_tp one.
 */

/* The whole disk's dev_t as the kernel encodes it (MKDEV: major << 20 | minor). */
static __always_inline __u32 fp_disk_dev(struct gendisk *disk, bool btf)
{
	if (!disk)
		return 0;
	if (btf)
		return ((__u32)disk->major << 20) | (__u32)disk->first_minor;
	return ((__u32)BPF_CORE_READ(disk, major) << 20) | (__u32)BPF_CORE_READ(disk, first_minor);
}

static __always_inline __u32 fp_rq_op(struct request *rq, bool btf)
{
	return (btf ? rq->cmd_flags : BPF_CORE_READ(rq, cmd_flags)) & FP_REQ_OP_MASK;
}

static __always_inline int track_start(struct request *rq, __u64 flags, bool btf)
{
	__u64 key = (__u64)rq;
	struct fp_inflight_io v = {};
	long err;

	v.op = fp_rq_op(rq, btf);
	if (v.op != FP_REQ_OP_READ && v.op != FP_REQ_OP_WRITE)
		return 0; /* flush, discard...: not data the process moved */
	v.start_ns = bpf_ktime_get_ns();
	v.tgid = bpf_get_current_pid_tgid() >> 32;
	v.dev = fp_disk_dev(btf ? rq->q->disk : BPF_CORE_READ(rq, q, disk), btf);
	err = bpf_map_update_elem(&inflight_io, &key, &v, flags);
	if (err && err != -17 /* EEXIST: an earlier hook already has it */)
		fp_drop(FP_DROP_INFLIGHT_IO_FULL);
	return 0;
}

/* A new request's life starts here: replace whatever a recycled rq left behind. */
FP_HOOK(block_io_start, track_start(rq, BPF_ANY, fp_btf), struct request *rq)
/*
 * Kernels before v6.5 (no block_io_start): the first of these to see a
 * request keeps it. Not loaded where block_io_start is (the loader).
 */
FP_HOOK(block_rq_insert, track_start(rq, BPF_NOEXIST, fp_btf), struct request *rq)
FP_HOOK(block_rq_issue, track_start(rq, BPF_NOEXIST, fp_btf), struct request *rq)

/*
 * block_rq_complete fires once per blk_update_request: usually once with all
 * bytes, several times for partial completions. Bytes are charged per call;
 * the request ends (latency, delete) when the call covers what is left.
 */
static __always_inline int on_complete(struct request *rq, int error, unsigned int nr_bytes, bool btf)
{
	__u64 key = (__u64)rq;
	struct fp_inflight_io *v = bpf_map_lookup_elem(&inflight_io, &key);
	struct fp_proc *p;
	__u64 now = bpf_ktime_get_ns();
	bool last = nr_bytes >= (btf ? rq->__data_len : BPF_CORE_READ(rq, __data_len));

	if (!v) {
		__u32 op = fp_rq_op(rq, btf);
		if (op == FP_REQ_OP_READ || op == FP_REQ_OP_WRITE)
			fp_drop(FP_DROP_IO_UNSEEN);
		if (error) /* a disk error is worth reporting without its submitter */
			fp_disk_error_at_complete(rq, error, nr_bytes, 0, op);
		return 0;
	}
	if (error)
		fp_disk_error_at_complete(rq, error, nr_bytes, v->tgid, v->op);
	p = fp_proc_get(v->tgid, NULL, false);
	if (!p) {
		fp_drop(FP_DROP_IO_ORPHANED);
	} else {
		if (v->op == FP_REQ_OP_WRITE) {
			__sync_fetch_and_add(&p->io_submit_write_bytes, nr_bytes);
			if (!fp_task_io) /* no task IO accounting: the submitter's bytes stand in */
				__sync_fetch_and_add(&p->io_write_bytes, nr_bytes);
			if (last)
				__sync_fetch_and_add(&p->io_write_reqs, 1);
		} else {
			__sync_fetch_and_add(&p->io_submit_read_bytes, nr_bytes);
			if (!fp_task_io)
				__sync_fetch_and_add(&p->io_read_bytes, nr_bytes);
			if (last)
				__sync_fetch_and_add(&p->io_read_reqs, 1);
		}
		if (error)
			__sync_fetch_and_add(&p->io_errors, 1);
		p->io_dev = v->dev;
		if (last) {
			__u64 lat = now - v->start_ns;
			__u32 slot = fp_hist_slot(lat);

			__sync_fetch_and_add(&p->io_lat_ns, lat);
			fp_atomic_max(&p->io_lat_max_ns, lat);
			if (slot < FP_HIST_SLOTS)
				__sync_fetch_and_add(&p->io_lat_hist[slot], 1);
		}
	}
	if (last)
		bpf_map_delete_elem(&inflight_io, &key);
	return 0;
}

FP_HOOK(block_rq_complete, on_complete(rq, error, nr_bytes, fp_btf), struct request *rq, blk_status_t error,
	unsigned int nr_bytes)

/* A bio sent to a bio-based device (no blk-mq queue): followed by the bio. */
static __always_inline int bio_start(struct bio *bio, bool btf)
{
	struct block_device *bdev = btf ? bio->bi_bdev : BPF_CORE_READ(bio, bi_bdev);
	struct gendisk *disk;
	__u64 key = (__u64)bio;
	struct fp_inflight_io v = {};

	if (!bdev)
		return 0;
	disk = btf ? bdev->bd_disk : BPF_CORE_READ(bdev, bd_disk);
	if (!disk || (btf ? disk->queue->mq_ops : BPF_CORE_READ(disk, queue, mq_ops)))
		return 0; /* request-based: the request hooks count it */
	v.op = (btf ? bio->bi_opf : BPF_CORE_READ(bio, bi_opf)) & FP_REQ_OP_MASK;
	if (v.op != FP_REQ_OP_READ && v.op != FP_REQ_OP_WRITE)
		return 0;
	v.start_ns = bpf_ktime_get_ns();
	v.tgid = bpf_get_current_pid_tgid() >> 32;
	v.dev = btf ? bdev->bd_dev : BPF_CORE_READ(bdev, bd_dev);
	if (bpf_map_update_elem(&inflight_io, &key, &v, BPF_ANY))
		fp_drop(FP_DROP_INFLIGHT_IO_FULL);
	return 0;
}

static __always_inline int bio_done(struct bio *bio)
{
	__u64 key = (__u64)bio;
	struct fp_inflight_io *v = bpf_map_lookup_elem(&inflight_io, &key);
	struct fp_proc *p;
	__u64 lat;
	__u32 slot;

	if (!v)
		return 0; /* a request-based device's bio, or queued before we attached */
	p = fp_proc_get(v->tgid, NULL, false);
	if (!p) {
		fp_drop(FP_DROP_IO_ORPHANED);
		bpf_map_delete_elem(&inflight_io, &key);
		return 0;
	}
	if (v->op == FP_REQ_OP_WRITE)
		__sync_fetch_and_add(&p->io_write_reqs, 1);
	else
		__sync_fetch_and_add(&p->io_read_reqs, 1);
	if (BPF_CORE_READ(bio, bi_status))
		__sync_fetch_and_add(&p->io_errors, 1);
	p->io_dev = v->dev;
	lat = bpf_ktime_get_ns() - v->start_ns;
	slot = fp_hist_slot(lat);
	__sync_fetch_and_add(&p->io_lat_ns, lat);
	fp_atomic_max(&p->io_lat_max_ns, lat);
	if (slot < FP_HIST_SLOTS)
		__sync_fetch_and_add(&p->io_lat_hist[slot], 1);
	bpf_map_delete_elem(&inflight_io, &key);
	return 0;
}

/* submit_bio_noacct: fires once per bio, in the submitter's context. */
FP_HOOK(block_bio_queue, bio_start(bio, fp_btf), struct bio *bio)
/* bio_endio of a bio whose queueing was traced. */
FP_HOOK(block_bio_complete, bio_done(bio), struct request_queue *q, struct bio *bio)
