// The attach-mode choice (probe/attach.h) on the kernels it has to serve,
// described as what each offers: a current one (6.5+: every tracepoint
// typed, sched_info, block_io_start), an older one (5.x: no block_io_start,
// no task storage for perf events), one without tracefs, one without the
// hardware tracepoints, and the options that force the fallbacks.
#include <gtest/gtest.h>

#include <string>

#include "probe/attach.h"

namespace fp {
namespace {

// Every hook typed in BTF and listed by tracefs, sched_info kept, task
// storage allowed everywhere: what 6.18 offers.
KernelOffer current_kernel() {
  KernelOffer k;
  k.tracefs = "/sys/kernel/tracing";
  for (const auto& h : hook_specs()) {
    k.listed.insert(std::string(h.category) + "/" + h.name);
    k.typed.insert(h.name);
  }
  k.sched_info = true;
  k.perf_event_task_storage = true;
  k.runq_rq = true;
  k.kfree_skb_reason = true;
  return k;
}

const HookStatus& hook(const AttachPlan& p, const std::string& name) {
  for (const auto& st : p.hooks)
    if (st.name == name) return st;
  ADD_FAILURE() << "no hook " << name;
  static const HookStatus none;
  return none;
}

AttachMode mode(const AttachPlan& p, const std::string& name) { return hook(p, name).mode; }

TEST(AttachPlan, OneStatusPerHookInTableOrder) {
  AttachPlan p = plan_attach(current_kernel(), {});
  ASSERT_EQ(p.hooks.size(), hook_specs().size());
  for (size_t i = 0; i < p.hooks.size(); i++) {
    EXPECT_EQ(p.hooks[i].name, hook_specs()[i].name);
    EXPECT_EQ(p.hooks[i].feeds, hook_specs()[i].feeds);
    EXPECT_EQ(p.hooks[i].required, hook_specs()[i].required);
  }
}

TEST(AttachPlan, CurrentKernelGetsTpBtfTaskStorageAndSchedInfo) {
  AttachPlan p = plan_attach(current_kernel(), {});
  EXPECT_EQ(mode(p, "sched_switch"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "sched_process_exit"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "signal_generate"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "mark_victim"), AttachMode::Tracepoint);  // classic
  EXPECT_EQ(mode(p, "mce_record"), AttachMode::Tracepoint);
  EXPECT_EQ(mode(p, "block_rq_error"), AttachMode::TpBtf);
  // sched_info counts the run-queue waits: no wakeup hooks
  EXPECT_TRUE(p.runq_sched_info);
  EXPECT_EQ(mode(p, "sched_wakeup"), AttachMode::NotNeeded);
  EXPECT_EQ(mode(p, "sched_wakeup_new"), AttachMode::NotNeeded);
  EXPECT_NE(hook(p, "sched_wakeup").reason.find("sched_info"), std::string::npos);
  // block_io_start sees every request first
  EXPECT_EQ(mode(p, "block_io_start"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "block_rq_insert"), AttachMode::NotNeeded);
  EXPECT_EQ(mode(p, "block_rq_issue"), AttachMode::NotNeeded);
  EXPECT_EQ(mode(p, "block_rq_complete"), AttachMode::TpBtf);
  EXPECT_TRUE(p.thread_ts);
  EXPECT_FALSE(p.disk_err_from_complete);
}

TEST(AttachPlan, ForcedRawTpPairsTheTidHash) {
  AttachChoices c;
  c.force_raw_tp = true;
  AttachPlan p = plan_attach(current_kernel(), c);
  EXPECT_EQ(mode(p, "sched_switch"), AttachMode::RawTp);
  EXPECT_EQ(mode(p, "block_rq_complete"), AttachMode::RawTp);
  EXPECT_EQ(mode(p, "mark_victim"), AttachMode::Tracepoint);  // classic: no pair to choose from
  EXPECT_EQ(mode(p, "sched_wakeup"), AttachMode::NotNeeded);  // sched_info still counts
  // raw_tp arguments cannot key task storage
  EXPECT_FALSE(p.thread_ts);
  // a raw block_io_start that tracefs lists still sees every request
  EXPECT_EQ(mode(p, "block_io_start"), AttachMode::RawTp);
  EXPECT_EQ(mode(p, "block_rq_insert"), AttachMode::NotNeeded);
}

// Run-queue blame needs sched_info's stamps and a task's run queue (cfs_rq::rq).
TEST(AttachPlan, RunqBlameNeedsSchedInfoAndTheTasksRunQueue) {
  EXPECT_TRUE(plan_attach(current_kernel(), {}).runq_blame);
  AttachChoices off;
  off.runq_blame = false;
  EXPECT_EQ(plan_attach(current_kernel(), off).runq_blame_reason, "turned off");
  AttachChoices wakeups;
  wakeups.runq_from_wakeups = true;
  AttachPlan w = plan_attach(current_kernel(), wakeups);
  EXPECT_FALSE(w.runq_blame);
  EXPECT_NE(w.runq_blame_reason.find("sched_info"), std::string::npos);
  KernelOffer k = current_kernel();
  k.runq_rq = false;
  AttachPlan nr = plan_attach(k, {});
  EXPECT_FALSE(nr.runq_blame);
  EXPECT_NE(nr.runq_blame_reason.find("CONFIG_FAIR_GROUP_SCHED"), std::string::npos);
}

TEST(AttachPlan, WakeupsStampedWhenAskedOrWithoutSchedInfo) {
  AttachChoices c;
  c.runq_from_wakeups = true;
  AttachPlan asked = plan_attach(current_kernel(), c);
  EXPECT_FALSE(asked.runq_sched_info);
  EXPECT_EQ(mode(asked, "sched_wakeup"), AttachMode::TpBtf);
  EXPECT_EQ(mode(asked, "sched_wakeup_new"), AttachMode::TpBtf);
  EXPECT_TRUE(asked.thread_ts);  // the wakeup hooks are tp_btf too

  KernelOffer k = current_kernel();
  k.sched_info = false;  // no CONFIG_SCHED_INFO
  AttachPlan without = plan_attach(k, {});
  EXPECT_FALSE(without.runq_sched_info);
  EXPECT_EQ(mode(without, "sched_wakeup"), AttachMode::TpBtf);
}

// 5.x: no block_io_start in BTF or tracefs, and perf-event programs may not
// use task storage (the clock tick would lose it).
TEST(AttachPlan, OlderKernelKeepsInsertIssueAndTheTidHash) {
  KernelOffer k = current_kernel();
  k.typed.erase("block_io_start");
  k.listed.erase("block/block_io_start");
  k.perf_event_task_storage = false;
  AttachPlan p = plan_attach(k, {});
  // raw_tp is tried (it needs no BTF); the attach decides
  EXPECT_EQ(mode(p, "block_io_start"), AttachMode::RawTp);
  EXPECT_EQ(mode(p, "block_rq_insert"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "block_rq_issue"), AttachMode::TpBtf);
  EXPECT_FALSE(p.thread_ts);

  AttachChoices no_tick;
  no_tick.cpu_tick_ms = 0;  // no perf-event program: task storage is fine again
  EXPECT_TRUE(plan_attach(k, no_tick).thread_ts);
}

// Socket owners are learned where the owner runs on TCP (connect, a read:
// tcp_rcv_space_adjust) and by the resolver's walk otherwise: no hook on
// every sendmsg/recvmsg (sock_send_length/sock_recv_length fire for every
// socket of every family, AF_UNIX too), whatever the kernel offers.
TEST(AttachPlan, SocketOwnersFromConnectAndReadsNotFromEverySocketCall) {
  AttachPlan now = plan_attach(current_kernel(), {});
  EXPECT_EQ(mode(now, "tcp_rcv_space_adjust"), AttachMode::TpBtf);
  EXPECT_EQ(mode(now, "inet_sock_set_state"), AttachMode::TpBtf);
  for (const char* h : {"sock_recv_length", "sock_send_length"}) {
    EXPECT_EQ(find_hook(h), nullptr) << h;
    for (const auto& st : now.hooks) EXPECT_NE(st.name, h);
  }
}

// Drops with a reason: skb:kfree_skb where it passes the reason (v5.17+,
// tp_btf or raw_tp like any other), off before load where it does not or
// where tracefs does not list it.
TEST(AttachPlan, KfreeSkbOnlyWithItsDropReason) {
  EXPECT_EQ(mode(plan_attach(current_kernel(), {}), "kfree_skb"), AttachMode::TpBtf);
  AttachChoices raw;
  raw.force_raw_tp = true;
  EXPECT_EQ(mode(plan_attach(current_kernel(), raw), "kfree_skb"), AttachMode::RawTp);

  KernelOffer no_reason = current_kernel();
  no_reason.kfree_skb_reason = false;
  AttachPlan p = plan_attach(no_reason, {});
  EXPECT_EQ(mode(p, "kfree_skb"), AttachMode::Unavailable);
  EXPECT_NE(hook(p, "kfree_skb").reason.find("no drop reason"), std::string::npos);

  KernelOffer unlisted = current_kernel();
  unlisted.listed.erase("skb/kfree_skb");
  EXPECT_EQ(mode(plan_attach(unlisted, {}), "kfree_skb"), AttachMode::Unavailable);
}

// The kernel's error reports (error_report_end, v5.14+): tp_btf where typed,
// off before load (with the reason, logged as info, not a warning) where
// tracefs does not list it; and the one hook a test may bind raw_tp, the
// others untouched (BPF_PROG_TEST_RUN runs raw_tp programs only).
TEST(AttachPlan, ErrorReportEndIsOptionalAndCanBeRawTpAlone) {
  EXPECT_EQ(mode(plan_attach(current_kernel(), {}), "error_report_end"), AttachMode::TpBtf);
  EXPECT_TRUE(newer_hook("error_report_end"));
  EXPECT_FALSE(find_hook("error_report_end")->required);

  KernelOffer old = current_kernel();
  old.listed.erase("error_report/error_report_end");
  old.typed.erase("error_report_end");
  AttachPlan p = plan_attach(old, {});
  EXPECT_EQ(mode(p, "error_report_end"), AttachMode::Unavailable);
  EXPECT_NE(hook(p, "error_report_end").reason.find("no error_report:error_report_end tracepoint"),
            std::string::npos)
      << hook(p, "error_report_end").reason;
  EXPECT_EQ(mode(p, "sched_switch"), AttachMode::TpBtf);

  AttachChoices one;
  one.raw_tp_hooks = {"error_report_end"};
  AttachPlan r = plan_attach(current_kernel(), one);
  EXPECT_EQ(mode(r, "error_report_end"), AttachMode::RawTp);
  for (const auto& st : r.hooks) {
    if (st.name == "error_report_end" || st.mode == AttachMode::NotNeeded) continue;
    EXPECT_TRUE(st.mode == AttachMode::TpBtf || st.mode == AttachMode::Tracepoint) << st.name;
  }
  // error_report_end keeps no thread state: task storage stays on.
  EXPECT_TRUE(r.thread_ts);
}

TEST(AttachPlan, OneUntypedThreadHookMeansTheTidHash) {
  KernelOffer k = current_kernel();
  k.typed.erase("mm_vmscan_direct_reclaim_begin");
  AttachPlan p = plan_attach(k, {});
  EXPECT_EQ(mode(p, "mm_vmscan_direct_reclaim_begin"), AttachMode::RawTp);
  EXPECT_FALSE(p.thread_ts);
  // a hook without thread state does not matter
  k = current_kernel();
  k.typed.erase("signal_generate");
  EXPECT_TRUE(plan_attach(k, {}).thread_ts);
}

TEST(AttachPlan, AbsentHardwareTracepointsAreOffWithTheReason) {
  KernelOffer k = current_kernel();
  k.listed.erase("mce/mce_record");
  k.listed.erase("block/block_rq_error");
  AttachPlan p = plan_attach(k, {});
  const HookStatus& mce = hook(p, "mce_record");
  EXPECT_EQ(mce.mode, AttachMode::Unavailable);
  EXPECT_EQ(mce.reason, "the kernel has no mce:mce_record tracepoint (no /sys/kernel/tracing/events/mce/mce_record)");
  EXPECT_EQ(mode(p, "block_rq_error"), AttachMode::Unavailable);
  // failed requests then come from block_rq_complete
  EXPECT_TRUE(p.disk_err_from_complete);
  // the other sources are untouched
  EXPECT_EQ(mode(p, "mc_event"), AttachMode::Tracepoint);
}

TEST(AttachPlan, ClassicTracepointWithoutItsRecordTypeIsUnavailable) {
  KernelOffer k = current_kernel();
  k.typed.erase("mark_victim");
  AttachPlan p = plan_attach(k, {});
  EXPECT_EQ(mode(p, "mark_victim"), AttachMode::Unavailable);
  EXPECT_EQ(hook(p, "mark_victim").reason, "the kernel has no oom:mark_victim tracepoint");
}

// Without tracefs nothing can be told from it: the hardware sources are
// tried (BTF and the attach decide), and block_io_start only counts when typed.
TEST(AttachPlan, NoTracefsTriesEverythingTheBtfHas) {
  KernelOffer k = current_kernel();
  k.tracefs.clear();
  k.listed.clear();
  AttachPlan p = plan_attach(k, {});
  EXPECT_EQ(mode(p, "mce_record"), AttachMode::Tracepoint);
  EXPECT_EQ(mode(p, "block_rq_error"), AttachMode::TpBtf);
  EXPECT_EQ(mode(p, "block_rq_insert"), AttachMode::NotNeeded);  // block_io_start typed

  AttachChoices raw;
  raw.force_raw_tp = true;
  AttachPlan r = plan_attach(k, raw);
  EXPECT_EQ(mode(r, "block_io_start"), AttachMode::RawTp);
  EXPECT_EQ(mode(r, "block_rq_insert"), AttachMode::RawTp);  // cannot tell it exists: keep insert/issue
}

TEST(AttachPlan, ProgramNames) {
  EXPECT_EQ(program_name("sched_switch", AttachMode::TpBtf), "btf_sched_switch");
  EXPECT_EQ(program_name("sched_switch", AttachMode::RawTp), "raw_sched_switch");
  EXPECT_EQ(program_name("mark_victim", AttachMode::Tracepoint), "tp_mark_victim");
  EXPECT_EQ(program_name("sched_wakeup", AttachMode::NotNeeded), "");
  EXPECT_EQ(program_name("mce_record", AttachMode::Unavailable), "");
  EXPECT_STREQ(attach_mode_name(AttachMode::NotNeeded), "not_needed");
  EXPECT_EQ(find_hook("no_such_hook"), nullptr);
  ASSERT_NE(find_hook("block_rq_error"), nullptr);
  EXPECT_STREQ(find_hook("block_rq_error")->hw_source, "disk");
}

TEST(AttachStatus, UnavailableCountersLeaveOutHardwareAndBlockIoStart) {
  KernelOffer k = current_kernel();
  k.listed.erase("thermal/thermal_temperature");
  AttachPlan p = plan_attach(k, {});
  for (auto& st : p.hooks)
    if (st.name == "block_io_start" || st.name == "mm_vmscan_direct_reclaim_begin") st.mode = AttachMode::Unavailable;
  EXPECT_EQ(unavailable_counters(p.hooks), std::vector<std::string>{"reclaim"});
}

TEST(AttachStatus, HardwareSourcesWithTheDiskFallback) {
  KernelOffer k = current_kernel();
  k.listed.erase("block/block_rq_error");
  k.listed.erase("ras/aer_event");
  auto sources = hardware_sources(plan_attach(k, {}).hooks);
  ASSERT_EQ(sources.size(), 6u);
  EXPECT_EQ(sources[0].name, "mce");
  EXPECT_EQ(sources[0].tracepoint, "mce:mce_record");
  EXPECT_EQ(sources[0].fault_class, "hw_mce");
  EXPECT_TRUE(sources[0].available);
  EXPECT_EQ(sources[0].mode, "tracepoint");
  EXPECT_EQ(sources[2].name, "pcie");
  EXPECT_FALSE(sources[2].available);
  EXPECT_EQ(sources[2].mode, "unavailable");
  EXPECT_NE(sources[2].reason.find("ras:aer_event"), std::string::npos);
  // no block_rq_error: the disk source is block_rq_complete's errors
  EXPECT_EQ(sources[3].name, "disk");
  EXPECT_TRUE(sources[3].available);
  EXPECT_EQ(sources[3].tracepoint, "block:block_rq_complete");
  EXPECT_EQ(sources[3].mode, "tp_btf");
  EXPECT_EQ(sources[3].reason, "no block_rq_error: failed requests taken from block_rq_complete");
  // none of the hooks at all (not loaded)
  auto none = hardware_sources({});
  ASSERT_EQ(none.size(), 6u);
  EXPECT_FALSE(none[5].available);
  EXPECT_EQ(none[5].reason, "not loaded");
}

}  // namespace
}  // namespace fp
