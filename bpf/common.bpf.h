/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps and helpers shared by every probe family. The families are compiled
 * separately and linked into one object with `bpftool gen object`; the maps
 * below are __weak so that each family can name them and the linker keeps
 * one copy.
 */
#ifndef FAULTPROBE_COMMON_BPF_H
#define FAULTPROBE_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "faultprobe/abi.h"
#include "core_fixes.bpf.h"

/* Per-process counter slots, mmap-ed by userspace and read without syscalls. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FP_DEFAULT_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct fp_proc);
} proc_slots SEC(".maps") __weak;

/* tgid -> index in proc_slots. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_DEFAULT_MAX_PROCS);
	__type(key, __u32);
	__type(value, __u32);
} proc_index SEC(".maps") __weak;

/*
 * Free slot indexes. LIFO so that freed slots are reused first and the used
 * part of proc_slots stays compact (userspace scans [0, slots_hwm)).
 * Userspace fills it before attaching.
 */
struct {
	__uint(type, BPF_MAP_TYPE_STACK);
	__uint(max_entries, FP_DEFAULT_MAX_PROCS);
	__uint(value_size, sizeof(__u32));
} free_slots SEC(".maps") __weak;

/*
 * Per-thread scratch state. Where the kernel lets every hook use BPF task
 * storage (tp_btf hooks and the perf-event tick, see the loader), it lives
 * in `thread_ts`, found from the task itself without a hash lookup and freed
 * with the task; otherwise (raw_tp) in the `threads` hash keyed by tid, which
 * the loader then sizes for the machine (and to one entry when unused).
 */
struct fp_thread {
	__u64 runtime_ns;    /* se.sum_exec_runtime already charged to the process */
	__u64 enq_ns;        /* when it became runnable (0: not waiting) */
	__u64 dstate_ns;     /* when it entered uninterruptible sleep (0: not in D) */
	__u64 reclaim_ns;    /* when it entered direct reclaim (0: not reclaiming) */
	__u64 faults;        /* min_flt + maj_flt already charged to the process */
	__u64 run_delay;     /* sched_info.run_delay already charged (fp_runq_sched_info) */
	__u64 pcount;        /* sched_info.pcount already charged */
	__u32 slot;          /* its process's slot, valid while proc_slots[slot].gen == gen */
	__u32 gen;           /* 0: no slot cached */
	/* task IO accounting already charged (fp_charge_task_io) */
	__u64 io_read;       /* ioac.read_bytes */
	__u64 io_write;      /* ioac.write_bytes */
	__u64 io_cancelled;  /* ioac.cancelled_write_bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_DEFAULT_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct fp_thread);
} threads SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct fp_thread);
} thread_ts SEC(".maps") __weak;

/* Thread state is in thread_ts for tp_btf hooks (set by the loader). */
extern const volatile bool fp_thread_ts;
/*
 * Run-queue waits come from the kernel's own sched_info (run_delay, pcount:
 * CONFIG_SCHED_INFO, on wherever schedstats or delay accounting are), read at
 * switch-out, instead of stamping every wakeup: no program on sched_wakeup.
 * Set by the loader after it saw the counters move (/proc/self/schedstat).
 */
extern const volatile bool fp_runq_sched_info;
/*
 * IO bytes come from the kernel's per-task IO accounting (task->ioac), read
 * where the other kernel counters are; false where the kernel lacks it (or
 * the loader was told not to): the block hooks then charge the submitter's
 * bytes to io_read_bytes/io_write_bytes as well.
 */
extern const volatile bool fp_task_io;
/*
 * CLOCK_MONOTONIC just before the probe was loaded (task->start_time's
 * clock): a thread started at or after it was born while the hooks watched.
 * Set by the loader; a taken-over probe keeps its own.
 */
extern const volatile __u64 fp_loaded_ns;

/* Block requests (and bios of bio-based devices) in flight: pointer -> submitter. */
struct fp_inflight_io {
	__u64 start_ns; /* 0: the request's own start_time_ns */
	__u32 tgid;
	__u32 op;
	__u32 dev;      /* a bio's device: kernel dev_t (major << 20 | minor); a request has its own */
	__u32 slot;     /* the submitter's slot, valid while proc_slots[slot].gen == gen (0: look it up) */
	__u32 gen;
	__u32 _pad0;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FP_DEFAULT_MAX_INFLIGHT_IO);
	__type(key, __u64);
	__type(value, struct fp_inflight_io);
} inflight_io SEC(".maps") __weak;

/* Discrete events. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FP_DEFAULT_RINGBUF_BYTES);
} events SEC(".maps") __weak;

/* Everything that could not be recorded, by fp_drop_reason, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_DROP_NR);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps") __weak;

/*
 * Which slots changed since userspace last looked: one bitmap per CPU (so
 * setting a bit never bounces a cache line between CPUs), FP words per CPU,
 * mmap-ed and swapped to zero by the reader. Sized by the loader.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FP_DEFAULT_MAX_PROCS / 64);
	__type(key, __u32);
	__type(value, __u64);
} dirty SEC(".maps") __weak;

/* Highest slot index handed out + 1 (userspace reads it through the skeleton's .bss). */
extern __u32 fp_slots_hwm;
/* Words of `dirty` per CPU: max_procs / 64, rounded up. Set by the loader. */
extern const volatile __u32 fp_dirty_words_per_cpu;

static __always_inline void fp_mark_dirty(__u32 slot)
{
	__u32 idx = bpf_get_smp_processor_id() * fp_dirty_words_per_cpu + slot / 64;
	__u64 *w = bpf_map_lookup_elem(&dirty, &idx);

	/*
	 * Only this CPU sets bits in its words; the reader takes them with an
	 * exchange. Testing first skips the locked OR when the bit is still set
	 * from an earlier hook in the same sample (the usual case for a busy
	 * process). A plain test racing the reader's exchange only costs a
	 * spurious mark, never a lost one: the OR that follows sets the bit.
	 */
	if (w && !(*w & (1ull << (slot & 63))))
		__sync_fetch_and_or(w, 1ull << (slot & 63));
}

static __always_inline void fp_drop(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&drops, &reason);

	if (c)
		*c += 1; /* per-CPU: no atomics needed */
}

/*
 * log2 bucket of a duration given in ns, counted in microseconds: the
 * largest k with ns / 1000 >= 2^k, i.e. with ns >= 1000 << k, found by a
 * binary search on ns itself (no division, no loop: this runs at every
 * switch). (ns >> s) >= 1000 << k exactly when ns >= 1000 << (k + s), so
 * each step halves the range. FP_HIST_SLOTS - 1 at most.
 */
static __always_inline __u32 fp_hist_slot(__u64 ns)
{
	__u32 slot = 0;

	if (ns >= 1000ull << 16) {
		slot += 16;
		ns >>= 16;
	}
	if (ns >= 1000ull << 8) {
		slot += 8;
		ns >>= 8;
	}
	if (ns >= 1000ull << 4) {
		slot += 4;
		ns >>= 4;
	}
	if (ns >= 1000ull << 2) {
		slot += 2;
		ns >>= 2;
	}
	if (ns >= 1000ull << 1)
		slot += 1;
	return slot < FP_HIST_SLOTS ? slot : FP_HIST_SLOTS - 1;
}

static __always_inline void fp_atomic_max(__u64 *dst, __u64 v)
{
	__u64 cur = *dst;

	/* A few tries are enough: losing a race to a larger value is fine. */
	for (int i = 0; i < 3 && v > cur; i++) {
		__u64 seen = __sync_val_compare_and_swap(dst, cur, v);
		if (seen == cur)
			break;
		cur = seen;
	}
}

static __always_inline void fp_bump_hwm(__u32 slot)
{
	__u32 want = slot + 1;
	__u32 cur = fp_slots_hwm;

	for (int i = 0; i < 3 && want > cur; i++) {
		__u32 seen = __sync_val_compare_and_swap(&fp_slots_hwm, cur, want);
		if (seen == cur)
			break;
		cur = seen;
	}
}

/*
 * The per-process slot of `tgid`, created on first sight when `create` is set
 * and `task` (any thread of the process) is not exiting: a slot is released
 * when the last thread exits, and a late event must not resurrect it.
 */
static __always_inline struct fp_proc *fp_proc_get_slot(__u32 tgid, struct task_struct *task,
							bool create, __u32 *slot_out)
{
	__u32 *idx = bpf_map_lookup_elem(&proc_index, &tgid);
	struct fp_proc *p;
	__u32 slot;
	long err;

	if (idx) {
		slot = *idx;
		fp_mark_dirty(slot);
		*slot_out = slot;
		return bpf_map_lookup_elem(&proc_slots, &slot);
	}
	if (!create || !task || tgid == 0)
		return NULL;
	if (BPF_CORE_READ(task, flags) & FP_PF_EXITING)
		return NULL;
	if (bpf_map_pop_elem(&free_slots, &slot)) {
		fp_drop(FP_DROP_PROC_SLOTS_FULL);
		return NULL;
	}
	p = bpf_map_lookup_elem(&proc_slots, &slot);
	if (!p) {
		bpf_map_push_elem(&free_slots, &slot, 0);
		return NULL;
	}

	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	__u32 gen = p->gen;

	__builtin_memset(p, 0, sizeof(*p));
	p->tgid = tgid;
	p->start_ns = BPF_CORE_READ(leader, start_time);
	p->first_seen_ns = bpf_ktime_get_ns();
	p->ppid = BPF_CORE_READ(leader, real_parent, tgid);
	p->cgroup_id = fp_task_cgroup_id(leader);
	bpf_probe_read_kernel_str(p->comm, sizeof(p->comm), &leader->comm);
	if (BPF_CORE_READ(leader, flags) & FP_PF_KTHREAD)
		p->flags |= FP_PROC_KTHREAD;
	p->gen = gen + 1; /* odd: in use */

	err = bpf_map_update_elem(&proc_index, &tgid, &slot, BPF_NOEXIST);
	if (err) {
		/* lost a race with another CPU creating it, or the index is full */
		p->tgid = 0;
		p->gen = gen + 2;
		bpf_map_push_elem(&free_slots, &slot, 0);
		if (err != -17 /* EEXIST */) {
			fp_drop(FP_DROP_PROC_INDEX_FULL);
			return NULL;
		}
		idx = bpf_map_lookup_elem(&proc_index, &tgid);
		if (!idx)
			return NULL;
		slot = *idx;
		*slot_out = slot;
		return bpf_map_lookup_elem(&proc_slots, &slot);
	}
	fp_bump_hwm(slot);
	fp_mark_dirty(slot);
	*slot_out = slot;
	return p;
}

static __always_inline struct fp_proc *fp_proc_get(__u32 tgid, struct task_struct *task, bool create)
{
	__u32 slot;

	return fp_proc_get_slot(tgid, task, create, &slot);
}

/* Give the slot of an exited process back. Returns false if somebody else did. */
static __always_inline bool fp_proc_release(__u32 tgid)
{
	__u32 *idx = bpf_map_lookup_elem(&proc_index, &tgid);
	__u32 slot;
	struct fp_proc *p;

	if (!idx)
		return false;
	slot = *idx;
	if (bpf_map_delete_elem(&proc_index, &tgid))
		return false;
	p = bpf_map_lookup_elem(&proc_slots, &slot);
	if (p) {
		p->tgid = 0;
		p->gen += 1; /* even: free */
	}
	fp_mark_dirty(slot);
	bpf_map_push_elem(&free_slots, &slot, 0);
	return true;
}

/* sched_info.run_delay / pcount of a task (0 without CONFIG_SCHED_INFO). */
static __always_inline __u64 fp_task_run_delay(struct task_struct *task, bool btf)
{
	if (!bpf_core_field_exists(task->sched_info.run_delay))
		return 0;
	return btf ? task->sched_info.run_delay : BPF_CORE_READ(task, sched_info.run_delay);
}

static __always_inline __u64 fp_task_pcount(struct task_struct *task, bool btf)
{
	if (!bpf_core_field_exists(task->sched_info.pcount))
		return 0;
	return btf ? task->sched_info.pcount : BPF_CORE_READ(task, sched_info.pcount);
}

/*
 * Task fields the hot hooks read: plain loads when `btf` (a BTF-typed task
 * pointer), bpf_probe_read_kernel otherwise (see fp_task_state).
 */
static __always_inline __u32 fp_task_tid(struct task_struct *task, bool btf)
{
	return btf ? task->pid : BPF_CORE_READ(task, pid);
}

static __always_inline __u32 fp_task_tgid(struct task_struct *task, bool btf)
{
	return btf ? task->tgid : BPF_CORE_READ(task, tgid);
}

static __always_inline bool fp_task_exiting(struct task_struct *task, bool btf)
{
	return (btf ? task->flags : BPF_CORE_READ(task, flags)) & FP_PF_EXITING;
}

/* The CPU time the kernel has charged to a thread so far (exact at a switch). */
static __always_inline __u64 fp_task_runtime(struct task_struct *task, bool btf)
{
	return btf ? task->se.sum_exec_runtime : BPF_CORE_READ(task, se.sum_exec_runtime);
}

/*
 * The page faults the kernel has counted for a thread (min_flt + maj_flt,
 * mm_account_fault: every completed fault, user mode or on behalf of the
 * thread in the kernel). Reading these at a switch replaces a program on
 * every page fault (and works on every architecture, where
 * exceptions:page_fault_user is x86's).
 */
static __always_inline __u64 fp_task_faults(struct task_struct *task, bool btf)
{
	if (btf)
		return task->min_flt + task->maj_flt;
	return BPF_CORE_READ(task, min_flt) + BPF_CORE_READ(task, maj_flt);
}

/*
 * A thread's state at first sight. A thread born after the probe was loaded
 * (fp_loaded_ns) has had nothing charged yet, whenever we first meet it, so
 * its state starts at zero and its first charge covers its whole life: a
 * thread whose state could not be made at its first switch (task storage
 * refused, or the hook did not run) loses nothing. For one that was already
 * running, what the kernel has counted so far is taken as already charged,
 * so CPU time, faults and run-queue waits count from here.
 */
static __always_inline void fp_thread_init(struct fp_thread *t, struct task_struct *task, bool btf)
{
	__builtin_memset(t, 0, sizeof(*t));
	if ((btf ? task->start_time : BPF_CORE_READ(task, start_time)) >= fp_loaded_ns)
		return;
	t->runtime_ns = fp_task_runtime(task, btf);
	t->faults = fp_task_faults(task, btf);
	if (fp_runq_sched_info) {
		t->run_delay = fp_task_run_delay(task, btf);
		t->pcount = fp_task_pcount(task, btf);
	}
	if (fp_task_io)
		fp_task_io_read(task, btf, &t->io_read, &t->io_write, &t->io_cancelled);
}

static __always_inline struct fp_thread *fp_thread_hash(__u32 tid, struct task_struct *task,
							bool create)
{
	struct fp_thread *t = bpf_map_lookup_elem(&threads, &tid);

	if (t || !create || tid == 0)
		return t;
	struct fp_thread init;

	fp_thread_init(&init, task, false);
	long err = bpf_map_update_elem(&threads, &tid, &init, BPF_NOEXIST);

	if (err && err != -17 /* EEXIST: another CPU created it */) {
		fp_drop(FP_DROP_THREADS_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&threads, &tid);
}

/*
 * The scratch state of `task` (thread `tid`), created on first sight when
 * `create` is set. `btf` says the caller is a tp_btf program, whose task
 * pointers are trusted and may key task storage; it is a constant in each
 * program, so the other path is compiled out (raw_tp programs never
 * reference thread_ts; tp_btf ones drop the hash path when the loader chose
 * task storage).
 */
static __always_inline struct fp_thread *fp_thread_of(struct task_struct *task, __u32 tid,
						      bool create, bool btf)
{
	if (!btf || !fp_thread_ts)
		return fp_thread_hash(tid, task, create);
	struct fp_thread *t = bpf_task_storage_get(&thread_ts, task, 0, 0);

	if (t || !create || tid == 0)
		return t;
	struct fp_thread init;

	fp_thread_init(&init, task, true);
	t = bpf_task_storage_get(&thread_ts, task, &init, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t)
		fp_drop(FP_DROP_THREADS_FULL);
	return t;
}

/* The calling thread's state (for hooks without a task argument). */
static __always_inline struct fp_thread *fp_current_thread(bool create, bool btf)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (!btf || !fp_thread_ts)
		return fp_thread_hash(tid, (void *)bpf_get_current_task(), create);
	return fp_thread_of(bpf_get_current_task_btf(), tid, create, true);
}

/* A thread's hash entry goes with its last switch (task storage goes by itself). */
static __always_inline void fp_thread_free(__u32 tid, bool btf)
{
	if (!btf || !fp_thread_ts)
		bpf_map_delete_elem(&threads, &tid);
}

/*
 * The slot of the process thread `t` belongs to: the slot cached in `t` while
 * its generation still matches (one array access, no hash lookup), else
 * through proc_index, and cached for next time.
 */
static __always_inline struct fp_proc *fp_proc_of(struct fp_thread *t, __u32 tgid,
						  struct task_struct *task, bool create)
{
	struct fp_proc *p;
	__u32 slot;

	if (t && t->gen) {
		slot = t->slot;
		p = bpf_map_lookup_elem(&proc_slots, &slot);
		if (p && p->gen == t->gen) {
			fp_mark_dirty(slot);
			return p;
		}
	}
	p = fp_proc_get_slot(tgid, task, create, &slot);
	if (p && t) {
		t->slot = slot;
		t->gen = p->gen;
	}
	return p;
}

/*
 * Charges what the kernel counted for a thread since the last charge. The
 * compare-and-swap makes a charge from process context (exit) safe against
 * the clock tick interrupting it on the same CPU.
 */
static __always_inline void fp_charge_runtime(struct fp_thread *t, struct fp_proc *p, __u64 rt)
{
	__u64 seen = t->runtime_ns;

	if (rt <= seen)
		return;
	if (__sync_val_compare_and_swap(&t->runtime_ns, seen, rt) != seen)
		return; /* the tick charged it meanwhile */
	if (p)
		__sync_fetch_and_add(&p->cpu_ns, rt - seen);
}

/*
 * Charges the page faults the kernel counted for a thread since the last
 * charge (CAS as fp_charge_runtime) and, when there were any, stores the
 * process's resident set as it is now: RSS grows through faults, so a
 * process that faulted since its last switch is the one whose RSS may have
 * moved (the clock tick refreshes a running one; a sleeping process whose
 * pages are reclaimed shows the drop when it next runs). This replaces
 * programs on exceptions:page_fault_user and kmem:rss_stat, which ran on
 * every fault and every RSS counter change (~100-140 ns each).
 */
static __always_inline void fp_store_rss(struct fp_proc *p, struct task_struct *task, bool btf)
{
	struct mm_struct *mm = btf ? task->mm : BPF_CORE_READ(task, mm);
	__s64 rss[4];

	if (!mm)
		return; /* a kernel thread, or past exit_mm */
	fp_mm_rss(mm, btf, rss);
	p->rss_pages[0] = rss[0];
	p->rss_pages[1] = rss[1];
	p->rss_pages[2] = rss[2];
	p->rss_pages[3] = rss[3];
}

static __always_inline void fp_charge_faults(struct fp_thread *t, struct fp_proc *p,
					     struct task_struct *task, bool btf, bool rss_anyway)
{
	__u64 f = fp_task_faults(task, btf);
	__u64 seen = t->faults;

	if (f > seen && __sync_val_compare_and_swap(&t->faults, seen, f) == seen) {
		if (p)
			__sync_fetch_and_add(&p->page_faults, f - seen);
	} else if (!rss_anyway) {
		return;
	}
	if (p)
		fp_store_rss(p, task, btf);
}

/*
 * Charges the IO the kernel accounted to a thread since the last charge
 * (CAS per counter, as fp_charge_runtime: the clock tick may interrupt an
 * exit-time charge). Dirtying a page counts in write_bytes, so a buffered
 * writer is charged its bytes here although the flusher submits them. A
 * dead thread's counters go to signal->ioac, which /proc/PID/io adds to the
 * live threads': charging every thread up to its final switch gives the
 * same total.
 */
static __always_inline void fp_charge_io_counter(__u64 *seen_at, __u64 now, __u64 *total)
{
	__u64 seen = *seen_at;

	if (now <= seen || __sync_val_compare_and_swap(seen_at, seen, now) != seen)
		return;
	if (total)
		__sync_fetch_and_add(total, now - seen);
}

static __always_inline void fp_charge_task_io(struct fp_thread *t, struct fp_proc *p,
					      struct task_struct *task, bool btf)
{
	__u64 rd, wr, cw;

	if (!fp_task_io)
		return;
	fp_task_io_read(task, btf, &rd, &wr, &cw);
	if (rd + wr + cw == t->io_read + t->io_write + t->io_cancelled)
		return; /* each only grows: an equal sum means nothing moved */
	fp_charge_io_counter(&t->io_read, rd, p ? &p->io_read_bytes : NULL);
	fp_charge_io_counter(&t->io_write, wr, p ? &p->io_write_bytes : NULL);
	fp_charge_io_counter(&t->io_cancelled, cw, p ? &p->io_cancelled_write_bytes : NULL);
}

/*
 * The one way into the ring buffer: a failed reserve is counted. The caller
 * submits or discards what it got.
 */
static __always_inline void *fp_emit_reserve(__u64 size, __u32 type, __u32 tgid, __u64 start_ns,
					     const char *comm)
{
	struct fp_event_hdr *h = bpf_ringbuf_reserve(&events, size, 0);

	if (!h) {
		fp_drop(FP_DROP_RINGBUF_FULL);
		return NULL;
	}
	h->type = type;
	h->tgid = tgid;
	h->ts_ns = bpf_ktime_get_ns();
	h->start_ns = start_ns;
	if (comm)
		__builtin_memcpy(h->comm, comm, FP_COMM_LEN);
	else
		__builtin_memset(h->comm, 0, FP_COMM_LEN);
	return h;
}

/* Ring-buffer fill (bytes) above which even a routine event wakes the reader. */
extern const volatile __u32 fp_ringbuf_wake_bytes;

/*
 * Submits a reserved event. Routine events (a clean exit) do not wake the
 * reader, which drains the ring at every sample, unless the ring is filling
 * up; urgent ones (a crash) always do. The wake-up is forced: the kernel's
 * default only wakes a reader that consumed everything before the record,
 * which after a run of unwoken records it has not.
 */
static __always_inline void fp_emit_submit(void *e, bool urgent)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (urgent || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= fp_ringbuf_wake_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/*
 * Attach modes: every hot hook is written once as a body function and bound
 * twice, as tp_btf (BTF-typed, cheapest) and raw_tp (for kernels whose BTF
 * lacks the tracepoint's btf_trace_ typedef). Userspace turns one of each
 * pair off before load. Bodies only use BPF_CORE_READ so both modes verify;
 * a body that needs to know which twin it is in reads `fp_btf` (a constant).
 */
#define FP_HOOK(tp, body, args...)                                                 \
	SEC("tp_btf/" #tp) int BPF_PROG(btf_##tp, args)                                 \
	{                                                                               \
		const bool fp_btf __attribute__((unused)) = true;                        \
		return body;                                                            \
	}                                                                               \
	SEC("raw_tp/" #tp) int BPF_PROG(raw_##tp, args)                                 \
	{                                                                               \
		const bool fp_btf __attribute__((unused)) = false;                       \
		return body;                                                            \
	}

#endif /* FAULTPROBE_COMMON_BPF_H */
