#include "probe/loader/kernel.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "faultprobe/abi.h"
#include "probe/probe.h"

namespace fp {

namespace {

constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;

// Effective capabilities from /proc/self/status (no libcap needed).
bool has_capability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t bits = std::stoull(line.substr(7), nullptr, 16);
    return (bits >> cap) & 1;
  }
  return false;
}

std::string tracefs_dir() {
  for (const char* d : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    std::error_code ec;
    if (std::filesystem::exists(std::string(d) + "/events", ec)) return d;
  }
  return {};
}

// Whether the kernel's struct `st` has a member `member` (its BTF).
bool btf_has_member(const struct btf* vmlinux, const char* st, const char* member) {
  int id = btf__find_by_name_kind(vmlinux, st, BTF_KIND_STRUCT);
  if (id < 0) return false;
  const struct btf_type* t = btf__type_by_id(vmlinux, id);
  const struct btf_member* m = btf_members(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++m) {
    const char* name = btf__name_by_offset(vmlinux, m->name_off);
    if (name && std::string_view(name) == member) return true;
  }
  return false;
}

// Whether the kernel keeps sched_info (run_delay, pcount) for every task:
// the fields are in its BTF (CONFIG_SCHED_INFO) and this process's own
// counters moved (kernels before 5.14 only counted with schedstats or delay
// accounting switched on).
bool kernel_counts_runq_waits(const struct btf* vmlinux) {
  if (!btf_has_member(vmlinux, "sched_info", "run_delay") || !btf_has_member(vmlinux, "sched_info", "pcount"))
    return false;
  std::ifstream in("/proc/self/schedstat");
  uint64_t run_ns = 0, delay_ns = 0, pcount = 0;
  return bool(in >> run_ns >> delay_ns >> pcount) && pcount > 0;
}

// Whether the kernel keeps per-task IO accounting (task->ioac.read_bytes,
// write_bytes, cancelled_write_bytes: CONFIG_TASK_IO_ACCOUNTING), the
// counters /proc/PID/io shows.
bool kernel_has_task_io_accounting(const struct btf* vmlinux) {
  return btf_has_member(vmlinux, "task_struct", "ioac") &&
         btf_has_member(vmlinux, "task_io_accounting", "write_bytes") &&
         btf_has_member(vmlinux, "task_io_accounting", "cancelled_write_bytes");
}

}  // namespace

uint32_t default_max_procs() {
  uint32_t alive = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      alive++;
  }
  uint64_t pid_max = 32768;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  uint64_t want = std::max<uint64_t>(16384, 2ull * alive);
  return uint32_t(std::min<uint64_t>({want, std::max<uint64_t>(pid_max, 1024), FP_DEFAULT_MAX_PROCS * 32ull}));
}

Result<void> check_probe_prerequisites() {
  if (geteuid() != 0) {
    bool caps = has_capability(kCapSysAdmin) ||
                (has_capability(kCapBpf) && has_capability(kCapPerfmon));
    if (!caps)
      return Error{EPERM,
                   "faultprobe needs root (or CAP_BPF and CAP_PERFMON) to load its kernel probe: "
                   "run it as root, e.g. with sudo"};
  }
  std::error_code ec;
  if (!std::filesystem::exists("/sys/kernel/btf/vmlinux", ec))
    return Error{ENOENT,
                 "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): faultprobe needs a "
                 "kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, RHEL >= 8.2 and "
                 "Fedora kernels have it)"};
  return {};
}

Result<KernelOffer> read_kernel_offer() {
  struct btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return Error::from_errno(errno, "cannot read the kernel's BTF");
  KernelOffer k;
  k.tracefs = tracefs_dir();
  for (const auto& h : hook_specs()) {
    const std::string where = std::string(h.category) + "/" + h.name;
    std::error_code ec;
    if (!k.tracefs.empty() && std::filesystem::exists(k.tracefs + "/events/" + where, ec)) k.listed.insert(where);
    // tp_btf attaches where the tracepoint's btf_trace_ typedef is in the
    // kernel's BTF; a classic tracepoint's record is trace_event_raw_NAME.
    bool typed = h.classic ? btf__find_by_name_kind(vmlinux, (std::string("trace_event_raw_") + h.name).c_str(),
                                                    BTF_KIND_STRUCT) >= 0
                           : btf__find_by_name_kind(vmlinux, (std::string("btf_trace_") + h.name).c_str(),
                                                    BTF_KIND_TYPEDEF) >= 0;
    if (typed) k.typed.insert(h.name);
  }
  k.sched_info = kernel_counts_runq_waits(vmlinux);
  k.task_io = kernel_has_task_io_accounting(vmlinux);
  k.task_iter = btf__find_by_name_kind(vmlinux, "bpf_iter_task", BTF_KIND_FUNC) >= 0;
  // BPF_CALL_1(bpf_sock_from_file, ...) leaves its btf_ typedef in the kernel's BTF.
  k.task_file_iter = btf__find_by_name_kind(vmlinux, "bpf_iter_task_file", BTF_KIND_FUNC) >= 0 &&
                     btf__find_by_name_kind(vmlinux, "btf_bpf_sock_from_file", BTF_KIND_TYPEDEF) >= 0;
  k.runq_rq = btf_has_member(vmlinux, "cfs_rq", "rq") && btf_has_member(vmlinux, "sched_info", "last_queued");
  k.kfree_skb_reason = btf_has_member(vmlinux, "trace_event_raw_kfree_skb", "reason");
  btf__free(vmlinux);
  k.perf_event_task_storage =
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_PERF_EVENT, BPF_FUNC_task_storage_get, nullptr) == 1;
  return k;
}

}  // namespace fp
