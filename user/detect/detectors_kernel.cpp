// kernel_error: the kernel's own error reports (bpf/kerror.bpf.c,
// error_report:error_report_end). A KFENCE or KASAN report is a bad memory
// access inside the kernel, a WARN a broken kernel invariant: a kernel bug,
// met while some process's thread was in the kernel (a system call, a page
// fault) or in a kernel thread or an interrupt. The record names that
// process as the place it happened, with the thread, and says it is not
// the cause; in interrupt context (or the idle task) it names no process
// (pid 0), the interrupted task in the evidence. One fault per (process,
// detector and id): the same WARN firing again keeps its fault open.
//
// Actions: the class has no ladder unless a policy gives it one
// (on.kernel_error), so by default it is alerted only; a kernel bug is no
// reason to kill or throttle the process that ran into it.
#include <map>
#include <string>
#include <utility>

#include "detect/detectors.h"
#include "detect/engine.h"
#include "detect/kernel_error.h"
#include "util/text.h"

namespace fp {
namespace {

class KernelErrorDetector : public Detector {
 public:
  explicit KernelErrorDetector(const RuleConfig& r) : rule_(r) {}
  const RuleConfig& rule() const override { return rule_; }

  void evaluate(const World& w, std::vector<Finding>& out) override {
    if (w.events == nullptr || w.events->kernel_errors.empty()) return;
    // Reports of one site in one process at one tick are one finding.
    std::map<std::pair<ProcKey, std::string>, size_t> at;
    for (const KernelErrorRecord& r : w.events->kernel_errors) {
      const bool irq = kernel_error_in_interrupt(r.context);
      const ProcKey culprit = irq || r.proc.tgid == 0 ? ProcKey{} : r.proc;
      if (!matches(culprit, r, w)) continue;
      const std::string detector = error_detector_name(r.detector, w.error_detectors);
      const std::string id = kernel_error_id_hex(r.id);
      const std::string subject = detector + " " + id;
      auto [it, fresh] = at.try_emplace({culprit, subject}, out.size());
      if (!fresh) {
        nlohmann::json& ev = out[it->second].evidence;
        ev["reports"] = ev["reports"].get<uint64_t>() + 1;
        continue;
      }
      Finding f;
      f.culprit = culprit;
      f.subject = subject;
      f.strong = true;
      f.immediate = true;
      if (error_detector_is_memory_safety(detector)) f.severity = Severity::Critical;
      f.evidence = evidence(r, detector, id, irq);
      f.evidence["report"] = subject;  // the event line's name for it (the subject is the tracker's key)
      out.push_back(std::move(f));
    }
  }

 private:
  // A rule with a process match covers reports made in a matching process's
  // context; one without covers all (interrupt context included).
  bool matches(const ProcKey& k, const KernelErrorRecord& r, const World& w) const {
    if (rule_.match.empty()) return true;
    if (k.tgid == 0) return false;
    const ProcState* s = w.procs != nullptr ? w.procs->find(k) : nullptr;
    if (s != nullptr) return rule_matches(rule_, *s, w);
    ProcState tmp;
    tmp.key = k;
    tmp.comm = r.comm;
    tmp.exited = true;
    return rule_matches(rule_, tmp, w);
  }

  static nlohmann::json evidence(const KernelErrorRecord& r, const std::string& detector, const std::string& id,
                                 bool irq) {
    nlohmann::json ev = nlohmann::json::object();
    ev["source"] = "kernel";
    ev["detector"] = detector;
    ev["detector_value"] = r.detector;
    ev["id"] = id;
    ev["context"] = kernel_error_context_name(r.context);
    // Where the probe could not read the CPU's preempt count (bpf/kerror.bpf.c:
    // every kernel so far), "task" and "kernel_thread" only say what the
    // current task was.
    ev["interrupt_context_known"] = r.irq_known;
    ev["reports"] = uint64_t{1};
    const std::string who = "pid " + std::to_string(r.proc.tgid) + " " + display_text(r.comm) + " (thread " +
                            std::to_string(r.tid) + " " + display_text(r.task_comm) + ")";
    std::string summary = "kernel " + detector + " report, id " + id;
    if (irq) {
      // The task the interrupt landed on had nothing to do with it.
      ev["interrupted"] = {{"pid", r.proc.tgid}, {"tid", r.tid}, {"comm", r.comm}, {"thread", r.task_comm}};
      summary += ", in " + kernel_error_context_name(r.context) + " context (interrupted " +
                 (r.proc.tgid != 0 ? who : std::string("the idle task")) + ")";
      ev["kernel_bug"] = "a kernel bug reported in interrupt context: no process is involved";
    } else {
      ev["tid"] = r.tid;
      ev["comm"] = r.comm;
      ev["thread"] = r.task_comm;
      summary += r.context == FP_KERR_CTX_KTHREAD ? ", in kernel thread " : ", in the kernel on behalf of ";
      summary += who;
      ev["kernel_bug"] = std::string("a kernel bug met in this process's context: the process is where it happened, "
                                     "not its cause") +
                         (r.irq_known ? "" : " (or an interrupt that landed on it: the probe cannot tell)");
    }
    ev["summary"] = std::move(summary);
    return ev;
  }

  RuleConfig rule_;
};

}  // namespace

std::unique_ptr<Detector> make_kernel_error(const RuleConfig& r) { return std::make_unique<KernelErrorDetector>(r); }

}  // namespace fp
