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

/*
 * Requests (and bios) in flight live first in `inflight_rq`, an array indexed
 * by a hash of the pointer: an entry is claimed with one compare-and-swap and
 * found with one array access, where the `inflight_io` hash costs an insert
 * and a delete per request (~150 ns each on this kind of machine). An entry
 * says which pointer owns it; a request whose entry another one holds (a
 * collision: a few percent with hundreds in flight) goes to the hash as
 * before, and a completion looks in the array first, then in the hash.
 */
#define FP_INFLIGHT_RQ_BITS 12
_Static_assert((1 << FP_INFLIGHT_RQ_BITS) == FP_INFLIGHT_ARRAY_ENTRIES, "inflight_rq size");
/* Entries used, minus one (the loader may use fewer: tests force collisions). */
const volatile __u32 fp_inflight_rq_mask = FP_INFLIGHT_ARRAY_ENTRIES - 1;

struct fp_inflight_rq {
	__u64 key; /* the request or bio pointer that owns the entry; 0: free */
	struct fp_inflight_io v;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << FP_INFLIGHT_RQ_BITS);
	__type(key, __u32);
	__type(value, struct fp_inflight_rq);
} inflight_rq SEC(".maps");

/*
 * A request's address as a number, to hash. tp_btf arguments are typed
 * pointers the verifier allows no arithmetic on, but a root program may store
 * one in a map value and read the number back. One entry per hook: a
 * completion that interrupts a start on the same CPU has its own.
 */
enum { FP_PTR_START, FP_PTR_COMPLETE, FP_PTR_BIO_START, FP_PTR_BIO_DONE, FP_PTR_NR };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_PTR_NR);
	__type(key, __u32);
	__type(value, __u64);
} ptr_scratch SEC(".maps");

static __always_inline __u64 fp_ptr_value(const void *ptr, __u32 which, bool btf)
{
	if (!btf)
		return (__u64)ptr; /* raw_tp arguments are plain numbers */
	__u64 *s = bpf_map_lookup_elem(&ptr_scratch, &which);

	if (!s)
		return 0;
	*s = (__u64)ptr;
	return *(volatile __u64 *)s;
}

static __always_inline struct fp_inflight_rq *fp_rq_entry(__u64 key)
{
	/* Fibonacci hashing: requests sit a fixed stride apart, the top bits spread them */
	__u32 idx = (__u32)((key * 0x9E3779B97F4A7C15ull) >> (64 - FP_INFLIGHT_RQ_BITS)) & fp_inflight_rq_mask;

	return bpf_map_lookup_elem(&inflight_rq, &idx);
}

/*
 * Records `v` for `key`. BPF_ANY replaces what a recycled request left
 * behind; BPF_NOEXIST keeps what an earlier hook recorded (pre-6.5 kernels
 * see a request at insert and again at issue; if the insert had to go to the
 * hash, the issue must not claim the then free array entry as well).
 */
static __always_inline void fp_inflight_put(__u64 key, struct fp_inflight_io *v, __u64 flags)
{
	struct fp_inflight_rq *e = fp_rq_entry(key);
	long err;

	if (e) {
		__u64 cur = e->key;

		if (cur == key) {
			if (flags != BPF_NOEXIST) {
				/* a request cannot start again before it ends: that end was never seen */
				fp_drop(FP_DROP_IO_END_UNSEEN);
				e->v = *v;
			}
			return;
		}
		if (flags == BPF_NOEXIST && bpf_map_lookup_elem(&inflight_io, &key))
			return;
		if (cur == 0 && __sync_val_compare_and_swap(&e->key, 0, key) == 0) {
			/* nobody reads it before the request is sent: its completion comes after this */
			e->v = *v;
			return;
		}
	}
	err = bpf_map_update_elem(&inflight_io, &key, v, BPF_NOEXIST);
	if (err == -17 /* EEXIST */ && flags != BPF_NOEXIST) {
		fp_drop(FP_DROP_IO_END_UNSEEN); /* as above */
		err = bpf_map_update_elem(&inflight_io, &key, v, BPF_ANY);
	}
	if (err && err != -17 /* EEXIST: an earlier hook already has it */)
		fp_drop(FP_DROP_INFLIGHT_IO_FULL);
}

/* What was recorded for `key`; *entry is its array entry (NULL: it is in the hash). */
static __always_inline struct fp_inflight_io *fp_inflight_get(__u64 key, struct fp_inflight_rq **entry)
{
	struct fp_inflight_rq *e = fp_rq_entry(key);

	if (e && e->key == key) {
		*entry = e;
		return &e->v;
	}
	*entry = NULL;
	return bpf_map_lookup_elem(&inflight_io, &key);
}

/* Forgets `key`: last, once everything recorded for it has been read. */
static __always_inline void fp_inflight_del(__u64 key, struct fp_inflight_rq *e)
{
	if (e)
		__sync_val_compare_and_swap(&e->key, key, 0); /* ordered after the reads above */
	else
		bpf_map_delete_elem(&inflight_io, &key);
}

/*
 * The submitter's slot as its thread has it cached (tp_btf with task storage:
 * one lookup here instead of a proc_index hash lookup at completion, which
 * runs in interrupt context with the hash cold).
 */
static __always_inline void fp_inflight_cache_slot(struct fp_inflight_io *v, bool btf)
{
	if (btf && fp_thread_ts) {
		struct fp_thread *t = bpf_task_storage_get(&thread_ts, bpf_get_current_task_btf(), 0, 0);

		if (t && t->gen) {
			v->slot = t->slot;
			v->gen = t->gen;
		}
	}
}

/* The submitter's slot: the cached one while its generation holds, else by tgid. */
static __always_inline struct fp_proc *fp_inflight_proc(struct fp_inflight_io *v)
{
	if (v->gen) {
		__u32 slot = v->slot;
		struct fp_proc *p = bpf_map_lookup_elem(&proc_slots, &slot);

		if (p && p->gen == v->gen) {
			fp_mark_dirty(slot);
			return p;
		}
	}
	return fp_proc_get(v->tgid, NULL, false);
}

static __always_inline int track_start(struct request *rq, __u64 flags, bool btf)
{
	struct fp_inflight_io v = {};

	v.op = fp_rq_op(rq, btf);
	if (v.op != FP_REQ_OP_READ && v.op != FP_REQ_OP_WRITE)
		return 0; /* flush, discard...: not data the process moved */
	/*
	 * The block layer stamps a request at allocation wherever it keeps IO
	 * statistics (start_time_ns, 0 otherwise): the completion uses that,
	 * and the device, from the request itself.
	 */
	if (!(btf ? rq->start_time_ns : BPF_CORE_READ(rq, start_time_ns)))
		v.start_ns = bpf_ktime_get_ns();
	v.tgid = bpf_get_current_pid_tgid() >> 32;
	fp_inflight_cache_slot(&v, btf);
	fp_inflight_put(fp_ptr_value(rq, FP_PTR_START, btf), &v, flags);
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
	__u64 key = fp_ptr_value(rq, FP_PTR_COMPLETE, btf);
	struct fp_inflight_rq *e;
	struct fp_inflight_io *v = fp_inflight_get(key, &e);
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
	p = fp_inflight_proc(v);
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
		__u32 dev = fp_disk_dev(btf ? rq->q->disk : BPF_CORE_READ(rq, q, disk), btf);

		if (p->io_dev != dev)
			p->io_dev = dev;
		if (last) {
			__u64 start = v->start_ns ?: (btf ? rq->start_time_ns : BPF_CORE_READ(rq, start_time_ns));
			__u64 lat = now > start ? now - start : 0;
			__u32 slot = fp_hist_slot(lat);

			__sync_fetch_and_add(&p->io_lat_ns, lat);
			fp_atomic_max(&p->io_lat_max_ns, lat);
			if (slot < FP_HIST_SLOTS)
				__sync_fetch_and_add(&p->io_lat_hist[slot], 1);
		}
	}
	if (last)
		fp_inflight_del(key, e);
	return 0;
}

FP_HOOK(block_rq_complete, on_complete(rq, error, nr_bytes, fp_btf), struct request *rq, blk_status_t error,
	unsigned int nr_bytes)

/* A bio sent to a bio-based device (no blk-mq queue): followed by the bio. */
static __always_inline int bio_start(struct bio *bio, bool btf)
{
	struct block_device *bdev = btf ? bio->bi_bdev : BPF_CORE_READ(bio, bi_bdev);
	struct gendisk *disk;
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
	fp_inflight_cache_slot(&v, btf);
	fp_inflight_put(fp_ptr_value(bio, FP_PTR_BIO_START, btf), &v, BPF_ANY);
	return 0;
}

static __always_inline int bio_done(struct bio *bio, bool btf)
{
	__u64 key = fp_ptr_value(bio, FP_PTR_BIO_DONE, btf);
	struct fp_inflight_rq *e;
	struct fp_inflight_io *v = fp_inflight_get(key, &e);
	struct fp_proc *p;
	__u64 lat;
	__u32 slot;

	if (!v)
		return 0; /* a request-based device's bio, or queued before we attached */
	p = fp_inflight_proc(v);
	if (!p) {
		fp_drop(FP_DROP_IO_ORPHANED);
		fp_inflight_del(key, e);
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
	fp_inflight_del(key, e);
	return 0;
}

/* submit_bio_noacct: fires once per bio, in the submitter's context. */
FP_HOOK(block_bio_queue, bio_start(bio, fp_btf), struct bio *bio)
/* bio_endio of a bio whose queueing was traced. */
FP_HOOK(block_bio_complete, bio_done(bio, fp_btf), struct request_queue *q, struct bio *bio)
