// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hardware family: machine checks, EDAC memory errors, PCIe AER, failed block
 * requests and thermal events, each forwarded as one ring-buffer event (they
 * are rare; userspace does the rate logic and names the device).
 *
 * Every source is optional: a kernel (or machine) without it has no such
 * tracepoint, and the loader turns that program's autoload off, so the probe
 * loads with whatever subset exists. The RAS and thermal tracepoints are
 * classic ones read through their trace_event_raw_* records with CO-RE: the
 * records are ABI-stable where the raw arguments are not (mce_record's
 * argument became struct mce_hw_err in v6.10). The local ___fp flavors below
 * name only the fields used, so vmlinux.h need not have the struct (a build
 * host without CONFIG_X86_MCE or CONFIG_PCIEAER still builds the probe).
 */
#include "common.bpf.h"
#include "hw.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 fp_disk_err_from_complete = 0;

struct trace_event_raw_mce_record___fp {
	__u64 mcgstatus;
	__u64 status;
	__u64 addr;
	__u64 misc;
	__u64 ip;
	__u32 cpu;
	__u32 socketid;
	__u8 bank;
} __attribute__((preserve_access_index));

struct trace_event_raw_mc_event___fp {
	unsigned int error_type;
	__u32 __data_loc_msg;
	__u32 __data_loc_label;
	__u16 error_count;
	__u8 mc_index;
	__s8 top_layer;
	__s8 middle_layer;
	__s8 lower_layer;
	long address;
	__u8 grain_bits;
	long syndrome;
} __attribute__((preserve_access_index));

struct trace_event_raw_aer_event___fp {
	__u32 __data_loc_dev_name;
	__u32 status;
	__u8 severity;
} __attribute__((preserve_access_index));

struct trace_event_raw_thermal_temperature___fp {
	__u32 __data_loc_thermal_zone;
	int id;
	int temp_prev;
	int temp;
} __attribute__((preserve_access_index));

struct trace_event_raw_thermal_zone_trip___fp {
	__u32 __data_loc_thermal_zone;
	int id;
	int trip;
	enum thermal_trip_type trip_type;
} __attribute__((preserve_access_index));

/* A __data_loc string of a classic tracepoint record: offset in the low 16 bits. */
static __always_inline void fp_read_data_loc(char *dst, __u32 size, void *ctx, __u32 loc)
{
	if (bpf_probe_read_kernel_str(dst, size, (char *)ctx + (loc & 0xffff)) < 0)
		dst[0] = 0;
}

/*
 * The user process on this CPU, if any: the machine-check record is logged
 * from a workqueue or the polling timer on most kernels, so a kernel thread
 * here says nothing about who was hit and is not reported.
 */
static __always_inline void *fp_reserve_hw(__u64 size, __u32 type, bool with_current)
{
	__u32 tgid = 0;
	struct fp_proc *p = NULL;

	if (with_current) {
		struct task_struct *t = (void *)bpf_get_current_task();

		if (!(BPF_CORE_READ(t, flags) & FP_PF_KTHREAD)) {
			tgid = bpf_get_current_pid_tgid() >> 32;
			p = fp_proc_get(tgid, NULL, false);
		}
	}
	return fp_emit_reserve(size, type, tgid, p ? p->start_ns : 0, p ? p->comm : NULL);
}

/* Machine checks: logged once per bank with a valid error (corrected or not). */
SEC("tracepoint/mce/mce_record")
int tp_mce_record(struct trace_event_raw_mce_record___fp *ctx)
{
	struct fp_mce_event *e = fp_reserve_hw(sizeof(*e), FP_EV_HW_MCE, true);

	if (!e)
		return 0;
	e->status = BPF_CORE_READ(ctx, status);
	e->addr = BPF_CORE_READ(ctx, addr);
	e->misc = BPF_CORE_READ(ctx, misc);
	e->mcgstatus = BPF_CORE_READ(ctx, mcgstatus);
	e->ip = BPF_CORE_READ(ctx, ip);
	e->cpu = BPF_CORE_READ(ctx, cpu);
	e->bank = BPF_CORE_READ(ctx, bank);
	e->socketid = BPF_CORE_READ(ctx, socketid);
	e->cur_cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* EDAC: corrected / uncorrected / fatal memory errors with the DIMM label. */
SEC("tracepoint/ras/mc_event")
int tp_mc_event(struct trace_event_raw_mc_event___fp *ctx)
{
	struct fp_mc_event *e = fp_reserve_hw(sizeof(*e), FP_EV_HW_MEMORY, false);

	if (!e)
		return 0;
	e->error_type = BPF_CORE_READ(ctx, error_type);
	e->error_count = BPF_CORE_READ(ctx, error_count);
	e->mc_index = BPF_CORE_READ(ctx, mc_index);
	e->top_layer = BPF_CORE_READ(ctx, top_layer);
	e->middle_layer = BPF_CORE_READ(ctx, middle_layer);
	e->lower_layer = BPF_CORE_READ(ctx, lower_layer);
	e->grain_bits = BPF_CORE_READ(ctx, grain_bits);
	e->address = BPF_CORE_READ(ctx, address);
	e->syndrome = BPF_CORE_READ(ctx, syndrome);
	fp_read_data_loc(e->label, sizeof(e->label), ctx, BPF_CORE_READ(ctx, __data_loc_label));
	fp_read_data_loc(e->msg, sizeof(e->msg), ctx, BPF_CORE_READ(ctx, __data_loc_msg));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* PCIe Advanced Error Reporting: the device's PCI address and severity. */
SEC("tracepoint/ras/aer_event")
int tp_aer_event(struct trace_event_raw_aer_event___fp *ctx)
{
	struct fp_aer_event *e = fp_reserve_hw(sizeof(*e), FP_EV_HW_PCIE, false);

	if (!e)
		return 0;
	e->status = BPF_CORE_READ(ctx, status);
	e->severity = BPF_CORE_READ(ctx, severity);
	fp_read_data_loc(e->dev_name, sizeof(e->dev_name), ctx, BPF_CORE_READ(ctx, __data_loc_dev_name));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * block_rq_error: the requests the kernel itself reports as I/O errors (not
 * passthrough, not RQF_QUIET). The submitter comes from block_rq_complete,
 * which ran just before for the same request (see hw.bpf.h).
 */
static __always_inline int on_rq_error(struct request *rq, int error, unsigned int nr_bytes)
{
	__u32 zero = 0, tgid = 0, op;
	struct fp_disk_handoff *h = bpf_map_lookup_elem(&disk_handoff, &zero);

	op = BPF_CORE_READ(rq, cmd_flags) & FP_REQ_OP_MASK;
	if (h && h->rq == (__u64)rq) {
		tgid = h->tgid;
		op = h->op;
		h->rq = 0;
	}
	fp_emit_disk_error(rq, error, nr_bytes, tgid, op, FP_DISK_FROM_RQ_ERROR);
	return 0;
}

FP_HOOK(block_rq_error, on_rq_error(rq, error, nr_bytes), struct request *rq, blk_status_t error,
	unsigned int nr_bytes)

/* Thermal zones: every temperature update, and trip points crossed. */
SEC("tracepoint/thermal/thermal_temperature")
int tp_thermal_temperature(struct trace_event_raw_thermal_temperature___fp *ctx)
{
	struct fp_thermal_event *e = fp_reserve_hw(sizeof(*e), FP_EV_HW_THERMAL, false);

	if (!e)
		return 0;
	e->kind = FP_THERMAL_TEMPERATURE;
	e->zone_id = BPF_CORE_READ(ctx, id);
	e->temp_mc = BPF_CORE_READ(ctx, temp);
	e->temp_prev_mc = BPF_CORE_READ(ctx, temp_prev);
	e->trip = -1;
	e->trip_type = 0;
	fp_read_data_loc(e->zone, sizeof(e->zone), ctx, BPF_CORE_READ(ctx, __data_loc_thermal_zone));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tracepoint/thermal/thermal_zone_trip")
int tp_thermal_zone_trip(struct trace_event_raw_thermal_zone_trip___fp *ctx)
{
	struct fp_thermal_event *e = fp_reserve_hw(sizeof(*e), FP_EV_HW_THERMAL, false);

	if (!e)
		return 0;
	e->kind = FP_THERMAL_TRIP;
	e->zone_id = BPF_CORE_READ(ctx, id);
	e->temp_mc = 0;
	e->temp_prev_mc = 0;
	e->trip = BPF_CORE_READ(ctx, trip);
	e->trip_type = BPF_CORE_READ(ctx, trip_type);
	fp_read_data_loc(e->zone, sizeof(e->zone), ctx, BPF_CORE_READ(ctx, __data_loc_thermal_zone));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
