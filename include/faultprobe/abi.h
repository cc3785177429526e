/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel/user ABI of the faultprobe probe: every struct that crosses the
 * BPF boundary lives here and is compiled by both clang (-target bpf, with
 * vmlinux.h) and g++. Fixed-width fields, explicit padding, no pointers.
 * The asserts at the end pin sizes and offsets under both compilers.
 */
#ifndef FAULTPROBE_ABI_H
#define FAULTPROBE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FP_COMM_LEN 16
#define FP_HIST_SLOTS 32 /* log2(usec) buckets: [2^i, 2^(i+1)) us, slot 0 = <2us */

/* Default capacities; the loader may change them before load. */
#define FP_DEFAULT_MAX_PROCS 32768
#define FP_DEFAULT_MAX_THREADS 131072
#define FP_DEFAULT_MAX_INFLIGHT_IO 16384
/* Entries of the direct-mapped array requests in flight go to first (a power of two). */
#define FP_INFLIGHT_ARRAY_ENTRIES 4096
#define FP_DEFAULT_RINGBUF_BYTES (2u << 20)

/* Reasons a record was not taken. Indexes of the per-CPU `drops` array. */
enum fp_drop_reason {
	FP_DROP_PROC_SLOTS_FULL = 0, /* no free per-process slot */
	FP_DROP_PROC_INDEX_FULL = 1, /* tgid->slot hash full */
	FP_DROP_THREADS_FULL = 2,    /* per-thread state hash full */
	FP_DROP_INFLIGHT_IO_FULL = 3,/* in-flight request hash full */
	FP_DROP_RINGBUF_FULL = 4,    /* ring buffer reserve failed */
	FP_DROP_IO_UNSEEN = 5,       /* completion of a request never seen starting */
	FP_DROP_IO_ORPHANED = 6,     /* completion after its submitter exited */
	FP_DROP_EXIT_UNSEEN = 7,     /* a process exited that never had a slot */
	FP_DROP_RUNQ_SLOT_TAKEN = 8, /* a CPU's run-queue blame slot taken from a process charged < 30 s ago */
	FP_DROP_NET_OWNERS_FULL = 9, /* socket -> owner map refused an insert */
	FP_DROP_NET_UNOWNED = 10,    /* a TCP/UDP event on a socket whose owner nobody found (not even the resolver) */
	FP_DROP_NET_ENDPOINTS_FULL = 11, /* (process, remote endpoint) map refused an insert */
	FP_DROP_NET_DROP_REASONS_FULL = 12, /* (process, drop reason) map refused an insert */
	/*
	 * A hook's program did not run: the kernel skips a program that is
	 * already running on the same CPU (e.g. an interrupt's IO completion
	 * arriving while a softirq's is in the program). Counted from the
	 * programs' recursion_misses by userspace, not by BPF.
	 */
	FP_DROP_HOOK_NESTED = 13,
	/*
	 * A block request (or bio) started again while the probe still held its
	 * previous life: that one's completion never reached the probe (seen when
	 * other tools attach to or detach from the same tracepoints as it runs,
	 * when the kernel can skip a probe's call), so its request went uncounted.
	 */
	FP_DROP_IO_END_UNSEEN = 14,
	FP_DROP_NR = 15,
};

/* mm counters as the kernel numbers them (MM_FILEPAGES...). */
#define FP_MM_COUNTERS 4

/*
 * Per-process counters, one slot per live process in an mmap-able array.
 * All counters are cumulative since the process was first seen; userspace
 * computes deltas. `gen` changes on every (re)allocation and release so a
 * reader detects a slot that changed owner while it was being copied.
 */
struct fp_proc {
	__u32 gen;          /* odd = in use, even = free */
	__u32 tgid;
	__u32 ppid;
	__u32 flags;        /* FP_PROC_* */
	__u64 start_ns;     /* group leader start time (CLOCK_MONOTONIC, kernel task->start_time) */
	__u64 first_seen_ns;/* bpf_ktime when the slot was created */
	char comm[FP_COMM_LEN];
	__u64 cgroup_id;    /* default-hierarchy cgroup id at creation/exec */

	/* scheduler */
	__u64 cpu_ns;
	__u64 runq_wait_ns;
	__u64 runq_waits;
	__u64 runq_wait_max_ns;
	__u64 nvcsw;
	__u64 nivcsw;
	__u64 dstate_ns;      /* finished uninterruptible sleeps */
	__u64 dstate_max_ns;
	__u64 dstate_since_ns;/* non-zero: some thread has been in D since then */
	__s32 dstate_active;  /* threads in D right now */
	__u32 threads;        /* threads created (clone with CLONE_THREAD) */
	__u64 forks;          /* child processes created */
	__u64 execs;

	/*
	 * Block IO requests, attributed to the process that submitted them: for
	 * buffered writes that is the flusher kernel thread, not the writer (the
	 * bytes the process moved are io_read_bytes/io_write_bytes below).
	 */
	__u64 io_submit_read_bytes;
	__u64 io_submit_write_bytes;
	__u64 io_read_reqs;
	__u64 io_write_reqs;
	__u64 io_lat_ns;      /* sum over completed requests */
	__u64 io_lat_max_ns;
	__u64 io_errors;

	/* memory */
	__u64 page_faults;    /* page faults (the kernel's min_flt + maj_flt of its threads) */
	__u64 reclaim_ns;     /* direct reclaim stall */
	__u64 reclaims;
	__s64 rss_pages[FP_MM_COUNTERS]; /* last value seen per mm counter (pages) */
	__u64 oom_victim;     /* times chosen as OOM victim */
	__u64 fatal_signals;  /* fatal signals generated for the process */
	__u32 last_fatal_sig;
	__u32 io_dev;         /* device of the last completed IO: kernel dev_t, major << 20 | minor */

	__u32 runq_hist[FP_HIST_SLOTS];
	__u32 io_lat_hist[FP_HIST_SLOTS];

	/*
	 * Storage IO charged to whoever caused it, as /proc/PID/io and iotop
	 * charge it: the kernel's per-task IO accounting (task->ioac,
	 * CONFIG_TASK_IO_ACCOUNTING), read per thread at switch-out, the clock
	 * tick and exit. A buffered write counts when the page is dirtied, in the
	 * writer; a read when its bio is submitted. Where the kernel has no task
	 * IO accounting these are the submitter's bytes (io_submit_*).
	 */
	__u64 io_read_bytes;
	__u64 io_write_bytes;
	__u64 io_cancelled_write_bytes; /* dirtied, then truncated before writeback */
	/* Throttled in dirty-page balancing (writeback:balance_dirty_pages pauses). */
	__u64 dirty_throttle_ns;
	__u64 dirty_throttles;

	/*
	 * Network (bpf/net.bpf.c), charged to the process that owns the socket
	 * (learned in process context, kept per socket) even when the kernel
	 * handles it in softirq or a timer.
	 */
	__u64 net_connects;         /* TCP connect() attempts (CLOSE -> SYN_SENT) */
	__u64 net_connect_failures; /* SYN_SENT -> CLOSE with an error: refused, timed out, unreachable */
	__u64 net_retransmits;      /* TCP segments retransmitted (tcp:tcp_retransmit_skb, successful ones; as nstat TcpRetransSegs) */
	__u64 net_segs_out;         /* TCP segments sent (tcp_sock.segs_out, charged as the probe sees the socket) */
	__u64 net_resets_sent;      /* RSTs sent on its sockets */
	__u64 net_resets_received;  /* RSTs received on its sockets */
	__u64 net_rcvq_overflows;   /* packets dropped because its socket's receive queue was full (TCP, UDP) */
	__u64 net_drops;            /* packets dropped with a reason on its sockets (skb:kfree_skb); 0: not counted */

	/*
	 * The kernel's own error reports (bpf/kerror.bpf.c,
	 * error_report:error_report_end: KFENCE, KASAN, WARN) made while one of
	 * its threads ran in the kernel: a kernel bug met in its context, not
	 * something the process did. The probe cannot tell interrupt context
	 * yet: a report from an interrupt counts on the task it landed on.
	 */
	__u64 kernel_errors;
};

#define FP_PROC_EXEC_SEEN (1u << 0)  /* comm is from exec or fork, not a guess */
#define FP_PROC_KTHREAD (1u << 2)    /* a kernel thread */

/*
 * Run-queue blame (bpf/runq_blame.bpf.h): who held a CPU while others waited
 * on it. At the switch that ends a wait of at least FP_RUNQ_BLAME_MIN_WAIT_NS,
 * the wait is charged to the processes that ran on that CPU during it (the
 * one switching out and the CPU's recent runners), and counted as the
 * waiter's own wait there. Each CPU keeps its own table (one per-CPU array
 * element, written only by that CPU, from sched_switch): cumulative counters
 * of the processes involved in long waits on it lately. A full table gives
 * the least recently charged slot to the newcomer.
 */
#define FP_RUNQ_BLAME_MIN_WAIT_NS 1000000ull /* shorter waits are neither charged nor counted */
#define FP_RUNQ_RING 64                      /* runs remembered per CPU while others wait */
#define FP_RUNQ_SLOTS 128                    /* processes per CPU table */
#define FP_RUNQ_PROBES 8                     /* slots a process may be found in */
#define FP_RUNQ_KEEP_NS 30000000000ull       /* a slot charged this recently is in use: taking it is a drop */

struct fp_runq_slot {
	__u32 tgid;             /* 0: free */
	__u32 tid;              /* the thread that last held the CPU while others waited */
	__u64 caused_ns;        /* others' waits on this CPU while it ran here */
	__u64 waited_ns;        /* its own waits on this CPU */
	__u64 waits;            /* how many waits waited_ns adds up */
	__u64 touched_ns;       /* run-queue clock of its last charge */
	/* tid's scheduling class as it held the CPU */
	__u32 policy;           /* task->policy: SCHED_NORMAL 0, FIFO 1, RR 2, BATCH 3, IDLE 5, DEADLINE 6 */
	__u32 rt_priority;      /* task->rt_priority (1..99 under FIFO/RR) */
	__s32 static_prio;      /* task->static_prio (120 + nice) */
	__u32 _pad0;
};

/* One run of a thread on the CPU while others waited. */
struct fp_runq_run {
	__u32 tgid;
	__u32 tid;
	__u64 start_ns;         /* run-queue clock at its arrival */
	__u64 end_ns;           /* and at its switch-out */
	__u32 policy;
	__u32 rt_priority;
	__s32 static_prio;
	__u32 _pad0;
};

struct fp_runq_cpu {
	__u64 unknown_ns;       /* waits charged to nobody: the ring did not reach back that far */
	__u32 ring_head;        /* next run to write; the newest is ring_head - 1 */
	__u32 _pad0;
	struct fp_runq_run ring[FP_RUNQ_RING];
	struct fp_runq_slot slot[FP_RUNQ_SLOTS];
};

/*
 * Per-process, per-remote-endpoint network counters (bpf/net.bpf.c): an LRU
 * map that userspace reads when a network fault opens, to name the peers
 * that account for most of it. Addresses are in network byte order; an IPv4
 * peer is family AF_INET (2) with its address in daddr[0..3].
 */
#define FP_DEFAULT_NET_ENDPOINTS 4096
#define FP_DEFAULT_NET_OWNERS 32768

struct fp_net_ep_key {
	__u32 tgid;
	__u16 family;           /* AF_INET 2, AF_INET6 10 */
	__u16 dport;            /* host byte order */
	__u64 start_ns;         /* the process's identity with tgid */
	__u8 daddr[16];
};

struct fp_net_ep {
	__u64 connects;
	__u64 connect_failures;
	__u64 retransmits;
	__u64 segs_out;
	__u64 resets_sent;
	__u64 resets_received;
	__u64 first_ns;         /* bpf_ktime_get_ns() of the entry's first count */
	__u64 last_ns;          /* and of its latest */
	__s32 last_err;         /* sk_err of the latest failed connect (ECONNREFUSED 111, ETIMEDOUT 110...) */
	__u32 drops;            /* packets dropped with a reason on the way to or from it (skb:kfree_skb); wraps */
};

/*
 * Per-process, per-drop-reason counts (bpf/net.bpf.c, skb:kfree_skb): an LRU
 * map that userspace reads when a net_drops fault opens, to name the reasons.
 * `reason` is the kernel's enum skb_drop_reason value, whose numbers move
 * between kernels: userspace names it from the running kernel's BTF.
 */
#define FP_DEFAULT_NET_DROP_REASONS 4096

struct fp_net_drop_key {
	__u32 tgid;
	__u32 reason;           /* enum skb_drop_reason */
	__u64 start_ns;         /* the process's identity with tgid */
};

/*
 * Sockets something happened to before the probe knew their owner (bpf/
 * net.bpf.c): a retransmit on an accepted socket that never read, a UDP
 * receiver's overflow. The owner of a socket is learned where the owner
 * itself runs (connect, a TCP read), never on every sendmsg/recvmsg (that
 * costs every socket of every family its own hook); what happens to a socket
 * still unknown is kept here, keyed by the struct sock pointer, until the
 * daemon's resolver pass (an iter/task_file walk: net_resolve) finds the
 * process that has it open and charges it all. A plain hash, not an LRU: an
 * entry leaves only charged or counted (FP_DROP_NET_UNOWNED) by the daemon.
 */
#define FP_DEFAULT_NET_PENDING 4096

struct fp_net_pending {
	__u32 retransmits;      /* segments */
	__u32 resets_received;
	__u32 rcvq_overflows;
	__u32 drops;            /* with reason drop_reason */
	__u32 drops_other;      /* with another reason (charged, not named) */
	__u32 drop_reason;      /* enum skb_drop_reason of the first drop */
	__u64 first_ns;         /* bpf_ktime_get_ns() of the first event */
	__u64 ino;              /* the socket's inode number then (0: it had no file yet): a
				   freed socket's address reused by another is not its owner */
};

/* What the resolver's walks did, summed over walks (bpf/net.bpf.c .bss). */
struct fp_net_resolve_stats {
	__u64 sockets;          /* socket files looked at */
	__u64 found;            /* pending sockets found open in a process */
	__u64 charged;          /* of those, charged to it (else: no slot for it, left pending) */
	__u64 events;           /* events charged */
};

/* Ring-buffer events. Every event starts with fp_event_hdr. */
enum fp_event_type {
	FP_EV_EXIT = 1,         /* last thread of a process exited; carries final counters */
	FP_EV_FATAL_SIGNAL = 2, /* a fatal signal was generated for a process */
	FP_EV_OOM_VICTIM = 3,   /* the OOM killer marked a process */
	FP_EV_HANG = 4,         /* khungtaskd reported a hung task */
	/* Hardware sources (bpf/hw.bpf.c); hdr names the process affected, if any. */
	FP_EV_HW_MCE = 5,       /* mce:mce_record; hdr: the task on the CPU that logged it */
	FP_EV_HW_MEMORY = 6,    /* ras:mc_event (EDAC); hdr: none */
	FP_EV_HW_PCIE = 7,      /* ras:aer_event; hdr: none */
	FP_EV_HW_DISK = 8,      /* a block request failed; hdr: its submitter */
	FP_EV_HW_THERMAL = 9,   /* thermal:thermal_temperature / thermal_zone_trip; hdr: none */
	FP_EV_KERNEL_ERROR = 10,/* error_report:error_report_end; hdr: the process in whose context it was made */
};

struct fp_event_hdr {
	__u32 type;
	__u32 tgid;
	__u64 ts_ns;            /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 start_ns;         /* process identity with tgid */
	char comm[FP_COMM_LEN];
};

/*
 * A process's final counters, packed: most of an fp_proc is zero for most
 * processes (a short-lived child has no IO, network, reclaim or OOM counts
 * and few histogram buckets), and exits are the ring buffer's busiest
 * records, so only the non-zero 64-bit words of the slot travel. Bit i of
 * present[] says word i of the fp_proc is non-zero and is the next of
 * words[]; the record is FP_EXIT_EVENT_BYTES(nwords) long, nwords being the
 * number of bits set. A short-lived process's record is ~250 B, not 704.
 */
#define FP_PROC_WORDS 82 /* sizeof(struct fp_proc) / 8 */
struct fp_exit_event {
	struct fp_event_hdr hdr;
	__u32 exit_code;        /* raw task->exit_code: (status << 8) | core(0x80) | signal */
	__u32 nwords;           /* words[] used */
	__u64 present[2];       /* bit i (of word i / 64): word i of the fp_proc follows */
	__u64 words[FP_PROC_WORDS];
};
#define FP_EXIT_EVENT_BYTES(nwords) (64 + 8 * (nwords)) /* 64: offsetof(words), asserted below */

struct fp_signal_event {
	struct fp_event_hdr hdr;
	__u32 sig;
	__u32 tid;              /* target thread */
	__u32 sender_tgid;      /* current when generated (0 for kernel/irq context) */
	__s32 result;           /* TRACE_SIGNAL_* of signal_generate */
	__s32 code;             /* si_code */
	__u32 _pad0;
};

/*
 * The kernel names an OOM victim by the thread it marked, which is not the
 * process's leader when the leader has exited (its mm is gone) or when the
 * allocating thread itself was dying. hdr.tgid is the process; how the probe
 * found it from the thread is in tgid_from.
 */
#define FP_OOM_TGID_UNRESOLVED 0 /* hdr.tgid is the thread id as given: userspace resolves it */
#define FP_OOM_TGID_SAME 1       /* the thread is its process's leader (tid == tgid) */
#define FP_OOM_TGID_CURRENT 2    /* the marked thread was the one allocating (current) */
#define FP_OOM_TGID_SIGKILL 3    /* the SIGKILL the OOM killer sent it just before marking */
#define FP_OOM_TGID_PROC 4       /* set by the loader for an unresolved one: /proc/TID/status */

struct fp_oom_event {
	struct fp_event_hdr hdr;
	__u64 total_vm_kb;
	__u64 anon_rss_kb;
	__u64 file_rss_kb;
	__u64 shmem_rss_kb;
	__u32 tid;              /* the thread the kernel marked */
	__u32 tgid_from;        /* FP_OOM_TGID_* */
};

struct fp_hang_event {
	struct fp_event_hdr hdr;
	__u32 tid;
	__u32 _pad0;
	__u64 dstate_since_ns;
};

/*
 * A kernel error report (bpf/kerror.bpf.c): KFENCE or KASAN found a bad
 * memory access, or a WARN fired. `detector` is the kernel's enum
 * error_detector value as the running kernel numbers it (userspace names it
 * from the kernel's BTF: newer kernels add detectors). hdr names the process
 * of the task that was current (hdr.tgid 0: none, e.g. the idle task); in
 * interrupt context that task was only interrupted.
 */
#define FP_KERR_CTX_TASK 0      /* a user process's thread, in a system call or fault */
#define FP_KERR_CTX_KTHREAD 1   /* a kernel thread (kworker, ksoftirqd...) */
#define FP_KERR_CTX_SOFTIRQ 2   /* serving a softirq, on top of the current task */
#define FP_KERR_CTX_HARDIRQ 3   /* a hardware interrupt handler */
#define FP_KERR_CTX_NMI 4       /* an NMI handler */

/* The CPU's preempt count was read: context tells irq from task (not yet: see bpf/kerror.bpf.c). */
#define FP_KERR_IRQ_KNOWN (1u << 0)

struct fp_kerror_event {
	struct fp_event_hdr hdr;
	__u64 id;               /* the report's id: the bad address (KFENCE, KASAN), the WARN's caller */
	__u32 detector;         /* enum error_detector: 0 kfence, 1 kasan, 2 warning on 5.14..6.18 */
	__u32 tid;              /* the current thread */
	__u32 context;          /* FP_KERR_CTX_* */
	__u32 flags;            /* FP_KERR_* */
	char task_comm[FP_COMM_LEN]; /* the current thread's comm (hdr.comm is its process's) */
};

/* Hardware events. Strings are NUL-terminated (truncated to fit). */
#define FP_HW_NAME_LEN 32
#define FP_HW_LABEL_LEN 64

/* MCi_STATUS bits (arch/x86/include/asm/mce.h). */
#define FP_MCI_STATUS_VAL (1ull << 63)
#define FP_MCI_STATUS_OVER (1ull << 62)
#define FP_MCI_STATUS_UC (1ull << 61)
#define FP_MCI_STATUS_EN (1ull << 60)
#define FP_MCI_STATUS_PCC (1ull << 57)

struct fp_mce_event {
	struct fp_event_hdr hdr;
	__u64 status;           /* MCi_STATUS */
	__u64 addr;             /* MCi_ADDR */
	__u64 misc;             /* MCi_MISC */
	__u64 mcgstatus;
	__u64 ip;
	__u32 cpu;              /* the CPU that took it (the record's field) */
	__u32 bank;
	__u32 socketid;
	__u32 cur_cpu;          /* bpf_get_smp_processor_id() where the record was logged */
};

/* enum hw_event_mc_err_type */
#define FP_MC_ERR_CORRECTED 0
#define FP_MC_ERR_UNCORRECTED 1
#define FP_MC_ERR_DEFERRED 2
#define FP_MC_ERR_FATAL 3
#define FP_MC_ERR_INFO 4

struct fp_mc_event {
	struct fp_event_hdr hdr;
	__u32 error_type;       /* FP_MC_ERR_* */
	__u32 error_count;
	__u32 mc_index;
	__s8 top_layer;
	__s8 middle_layer;
	__s8 lower_layer;
	__u8 grain_bits;
	__u64 address;          /* page << PAGE_SHIFT | offset */
	__u64 syndrome;
	char label[FP_HW_LABEL_LEN];  /* DIMM label(s), e.g. "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0" */
	char msg[FP_HW_LABEL_LEN];
};

/* AER severities as the aer_event tracepoint numbers them. */
#define FP_AER_NONFATAL 0
#define FP_AER_FATAL 1
#define FP_AER_CORRECTABLE 2

struct fp_aer_event {
	struct fp_event_hdr hdr;
	__u32 status;           /* AER (un)correctable error status register */
	__u32 severity;         /* FP_AER_* */
	char dev_name[FP_HW_NAME_LEN];  /* PCI address, "0000:03:00.0" */
};

#define FP_DISK_FROM_RQ_ERROR 0     /* block:block_rq_error (the kernel's "I/O error" filter) */
#define FP_DISK_FROM_RQ_COMPLETE 1  /* block:block_rq_complete with an error (kernels without rq_error) */

struct fp_disk_event {
	struct fp_event_hdr hdr;
	__u64 sector;
	__u32 major;
	__u32 minor;            /* of the disk (first_minor) */
	__s32 error;            /* blk_status_t */
	__u32 nr_bytes;
	__u32 op;               /* REQ_OP_*: 0 read, 1 write */
	__u32 source;           /* FP_DISK_FROM_* */
	__u32 submitter_known;  /* hdr.tgid is the submitter (0: the request was not seen starting) */
	__u32 _pad0;
	char disk[FP_HW_NAME_LEN];  /* "sda", "dm-0", "nvme0n1" */
};

#define FP_THERMAL_TEMPERATURE 0
#define FP_THERMAL_TRIP 1
/* enum thermal_trip_type */
#define FP_TRIP_ACTIVE 0
#define FP_TRIP_PASSIVE 1
#define FP_TRIP_HOT 2
#define FP_TRIP_CRITICAL 3

struct fp_thermal_event {
	struct fp_event_hdr hdr;
	__u32 kind;             /* FP_THERMAL_* */
	__s32 zone_id;
	__s32 temp_mc;          /* millidegrees C (temperature events) */
	__s32 temp_prev_mc;
	__s32 trip;             /* trip index (trip events) */
	__u32 trip_type;        /* FP_TRIP_* (trip events) */
	char zone[FP_HW_NAME_LEN];  /* thermal zone type, e.g. "x86_pkg_temp", "acpitz" */
};

/*
 * What the seeding passes found (bpf/seed.bpf.c), in the probe's .bss:
 * cumulative over the passes (load, takeovers); the loader reads the
 * difference a pass made.
 */
struct fp_seed_stats {
	__u64 tasks;          /* tasks visited */
	__u64 procs;          /* process slots created */
	__u64 threads;        /* thread states created (their counters count from the pass) */
	__u64 dstate;         /* uninterruptible sleeps seeded from their real start */
	__u64 withdrawn;      /* sleeps that ended while being seeded (left to the hooks) */
	__u64 exiting;        /* tasks skipped because they were exiting */
	__u64 released;       /* slots given back: the process finished exiting meanwhile */
	__u64 since_unknown;  /* sleeps whose start the scheduler did not record: counted from the pass */
};

/*
 * Layout pinned for both compilers: clang compiles these with the probe,
 * g++ with the loader, so a field moved on one side fails both builds.
 */
#ifdef __cplusplus
#define FP_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define FP_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#define FP_OFFSETOF(type, field) __builtin_offsetof(type, field)

FP_ABI_ASSERT(sizeof(struct fp_proc) == 656, "fp_proc size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, kernel_errors) == 648, "fp_proc.kernel_errors");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, net_connects) == 584, "fp_proc.net_connects");
FP_ABI_ASSERT(sizeof(struct fp_proc) % 8 == 0, "fp_proc must stay 8-byte aligned in arrays");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, start_ns) == 16, "fp_proc.start_ns");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, cpu_ns) == 56, "fp_proc.cpu_ns");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, dstate_active) == 128, "fp_proc.dstate_active");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, io_submit_read_bytes) == 152, "fp_proc.io_submit_read_bytes");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, page_faults) == 208, "fp_proc.page_faults");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, rss_pages) == 232, "fp_proc.rss_pages");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, runq_hist) == 288, "fp_proc.runq_hist");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, io_lat_hist) == 416, "fp_proc.io_lat_hist");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_proc, io_read_bytes) == 544, "fp_proc.io_read_bytes");
FP_ABI_ASSERT(sizeof(struct fp_event_hdr) == 40, "fp_event_hdr size");
FP_ABI_ASSERT(sizeof(struct fp_exit_event) == 720, "fp_exit_event size");
FP_ABI_ASSERT(sizeof(struct fp_proc) == 8 * FP_PROC_WORDS, "fp_proc is FP_PROC_WORDS words");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_exit_event, words) == 64, "fp_exit_event.words");
FP_ABI_ASSERT(sizeof(struct fp_kerror_event) == 80, "fp_kerror_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_kerror_event, task_comm) == 64, "fp_kerror_event.task_comm");
FP_ABI_ASSERT(sizeof(struct fp_net_ep_key) == 32, "fp_net_ep_key size");
FP_ABI_ASSERT(sizeof(struct fp_net_ep) == 72, "fp_net_ep size");
FP_ABI_ASSERT(sizeof(struct fp_net_drop_key) == 16, "fp_net_drop_key size");
FP_ABI_ASSERT(sizeof(struct fp_net_pending) == 40, "fp_net_pending size");
FP_ABI_ASSERT(sizeof(struct fp_net_resolve_stats) == 32, "fp_net_resolve_stats size");
FP_ABI_ASSERT(sizeof(struct fp_signal_event) == 64, "fp_signal_event size");
FP_ABI_ASSERT(sizeof(struct fp_oom_event) == 80, "fp_oom_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_oom_event, tid) == 72, "fp_oom_event.tid");
FP_ABI_ASSERT(sizeof(struct fp_seed_stats) == 64, "fp_seed_stats size");
FP_ABI_ASSERT(sizeof(struct fp_hang_event) == 56, "fp_hang_event size");
FP_ABI_ASSERT(sizeof(struct fp_mce_event) == 96, "fp_mce_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_mce_event, cpu) == 80, "fp_mce_event.cpu");
FP_ABI_ASSERT(sizeof(struct fp_mc_event) == 200, "fp_mc_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_mc_event, label) == 72, "fp_mc_event.label");
FP_ABI_ASSERT(sizeof(struct fp_aer_event) == 80, "fp_aer_event size");
FP_ABI_ASSERT(sizeof(struct fp_disk_event) == 112, "fp_disk_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_disk_event, disk) == 80, "fp_disk_event.disk");
FP_ABI_ASSERT(sizeof(struct fp_thermal_event) == 96, "fp_thermal_event size");
FP_ABI_ASSERT(FP_OFFSETOF(struct fp_thermal_event, zone) == 64, "fp_thermal_event.zone");
FP_ABI_ASSERT(sizeof(struct fp_runq_slot) == 56, "fp_runq_slot size");
FP_ABI_ASSERT(sizeof(struct fp_runq_run) == 40, "fp_runq_run size");
FP_ABI_ASSERT(sizeof(struct fp_runq_cpu) == 16 + 40 * FP_RUNQ_RING + 56 * FP_RUNQ_SLOTS, "fp_runq_cpu size");

#endif /* FAULTPROBE_ABI_H */
