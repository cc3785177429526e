#include "alert/syslog.h"

#include <syslog.h>

#include <algorithm>

#include "alert/forwarder.h"
#include "util/duration.h"
#include "util/text.h"

namespace fp {
namespace {

std::string evidence_text(const nlohmann::json& evidence) {
  if (evidence.is_null() || (evidence.is_object() && evidence.empty())) return "{}";
  // A comm or path in the evidence is escaped like the other fields.
  return safe_dump(evidence);
}

std::string join_pids(const std::vector<uint32_t>& pids) {
  std::string out;
  for (uint32_t p : pids) {
    if (!out.empty()) out += ',';
    out += std::to_string(p);
  }
  return out;
}

// The fields every line about a process starts with, in the same order.
void add_process_fields(AlertFields& f, const std::string& cls, const std::string& rule, uint32_t pid,
                        const std::string& comm) {
  f.emplace_back("class", cls);
  if (!rule.empty()) f.emplace_back("rule", rule);
  f.emplace_back("pid", std::to_string(pid));
  f.emplace_back("comm", comm);
}

// Every field but the evidence (already safe_dump()ed) holds bytes of a
// process or our text around them: escaped here, once, so that the local
// line and the RFC 5424 one carry the same reversible text.
AlertLine make_line(int severity, std::string msgid, AlertFields fields) {
  for (auto& [key, value] : fields)
    if (key != "evidence") value = escape_text(value);
  AlertLine line;
  line.severity = severity;
  line.msgid = std::move(msgid);
  line.fields = std::move(fields);
  line.text = line.msgid + " " + format_kv(line.fields);
  return line;
}

}  // namespace

// ---- local syslog ----

namespace {
// openlog() is process-global: the first sink opens, the last one closes, so a
// reconfigure that builds the new sinks before dropping the old keeps the log open.
std::mutex g_openlog_mu;
int g_openlog_users = 0;
}  // namespace

LocalSyslogSink::LocalSyslogSink() {
  std::lock_guard lock(g_openlog_mu);
  if (g_openlog_users++ == 0) openlog("faultprobed", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

LocalSyslogSink::~LocalSyslogSink() {
  std::lock_guard lock(g_openlog_mu);
  if (--g_openlog_users == 0) closelog();
}

void LocalSyslogSink::send(const AlertLine& line) {
  syslog(LOG_DAEMON | (line.severity & LOG_PRIMASK), "%s", line.text.c_str());
}

Result<SyslogSinks> make_syslog_sinks(const DaemonConfig& cfg) {
  SyslogSinks sinks;
  if (cfg.syslog) sinks.push_back(std::make_unique<LocalSyslogSink>());
  if (!cfg.syslog_forward.empty()) {
    auto target = parse_forward_target(cfg.syslog_forward);
    if (!target) return Error{EINVAL, "syslog_forward: " + target.error().message};
    sinks.push_back(std::make_unique<Rfc5424Forwarder>(*target));
  }
  return sinks;
}

int syslog_severity(Severity s) { return s == Severity::Critical ? LOG_CRIT : LOG_WARNING; }

// ---- token bucket ----

TokenBucket::TokenBucket(uint32_t burst, uint64_t per_ns, uint64_t now_ns) { reset(burst, per_ns, now_ns); }

void TokenBucket::reset(uint32_t burst, uint64_t per_ns, uint64_t now_ns) {
  burst_ = burst;
  per_ns_ = per_ns ? per_ns : 1;
  tokens_ = burst;
  last_ns_ = now_ns;
}

void TokenBucket::refill(uint64_t now_ns) {
  if (now_ns <= last_ns_) return;
  double add = static_cast<double>(now_ns - last_ns_) * burst_ / static_cast<double>(per_ns_);
  tokens_ = std::min<double>(burst_, tokens_ + add);
  last_ns_ = now_ns;
}

bool TokenBucket::take(uint64_t now_ns) {
  if (burst_ == 0) return true;
  refill(now_ns);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

// ---- alerter ----

Alerter::Alerter(const DaemonConfig& cfg, Clock& clock, SyslogSinks sinks)
    : cfg_(cfg),
      clock_(clock),
      sinks_(std::move(sinks)),
      normal_(cfg.syslog_burst, static_cast<uint64_t>(cfg.syslog_per.count()), clock.now_ns()),
      critical_(cfg.syslog_burst, static_cast<uint64_t>(cfg.syslog_per.count()), clock.now_ns()) {}

Result<std::unique_ptr<Alerter>> Alerter::create(const DaemonConfig& cfg, Clock& clock, SinkFactory factory) {
  auto sinks = factory(cfg);
  if (!sinks) return sinks.error();
  auto a = std::make_unique<Alerter>(cfg, clock, std::move(*sinks));
  a->factory_ = std::move(factory);
  return a;
}

void Alerter::fault_opened(const FaultRecord& r) {
  AlertFields f;
  f.emplace_back("class", fault_class_name(r.cls));
  f.emplace_back("severity", severity_name(r.severity));
  f.emplace_back("rule", r.rule);
  f.emplace_back("pid", std::to_string(r.culprit.tgid));
  f.emplace_back("comm", r.comm);
  f.emplace_back("cgroup", r.cgroup);
  if (!r.unit.empty()) f.emplace_back("unit", r.unit);
  if (r.unit_user) f.emplace_back("unit_user", std::to_string(*r.unit_user));
  if (!r.container.empty()) f.emplace_back("container", r.container);
  if (is_hardware_class(r.cls) && r.evidence.contains("device") && r.evidence["device"].is_string())
    f.emplace_back("device", r.evidence["device"].get<std::string>());
  // A kernel error: which report ("kfence 0xffff888012345678"), before the evidence says whose context.
  if (r.cls == FaultClass::KernelError && !r.subject.empty()) f.emplace_back("report", r.subject);
  if (!r.victims.empty()) f.emplace_back("victims", join_pids(r.victims));
  f.emplace_back("evidence", evidence_text(r.evidence));
  emit(make_line(syslog_severity(r.severity), "fault", std::move(f)));
}

void Alerter::fault_resolved(const FaultRecord& r) {
  AlertFields f;
  add_process_fields(f, fault_class_name(r.cls), r.rule, r.culprit.tgid, r.comm);
  f.emplace_back("cgroup", r.cgroup);
  uint64_t ms = r.mono_ns > r.opened_mono_ns && r.opened_mono_ns ? (r.mono_ns - r.opened_mono_ns) / 1'000'000ull : 0;
  f.emplace_back("duration_ms", std::to_string(ms));
  if (r.evidence.is_object() && !r.evidence.empty()) f.emplace_back("evidence", evidence_text(r.evidence));
  emit(make_line(LOG_NOTICE, "resolved", std::move(f)));
}

void Alerter::action(const ActionRecord& r) {
  AlertFields f;
  add_process_fields(f, fault_class_name(r.cls), r.rule, r.target.key.tgid, r.target.comm);
  f.emplace_back("cgroup", r.target.cgroup);
  if (!r.policy.empty()) f.emplace_back("policy", r.policy);
  if (!r.target.service.empty()) f.emplace_back("service", r.target.service);
  f.emplace_back("action", action_type_name(r.type));
  if (!r.step.empty()) f.emplace_back("step", r.step);
  f.emplace_back("result", action_result_name(r.outcome.result));
  if (r.outcome.new_key.tgid) f.emplace_back("new_pid", std::to_string(r.outcome.new_key.tgid));
  if (!r.outcome.detail.empty()) f.emplace_back("detail", r.outcome.detail);
  int sev = LOG_INFO;  // dry run, skipped: nothing changed on the host
  if (r.outcome.result == ActionResult::Ok) sev = LOG_NOTICE;
  if (r.outcome.result == ActionResult::Failed) sev = LOG_ERR;
  emit(make_line(sev, "action", std::move(f)));
}

void Alerter::recovery(const RecoveryAlert& r) {
  AlertFields f;
  add_process_fields(f, fault_class_name(r.cls), r.rule, r.pid, r.comm);
  f.emplace_back("recovered", r.recovered ? "yes" : "no");
  if (!r.detail.empty()) f.emplace_back("detail", r.detail);
  emit(make_line(r.recovered ? LOG_NOTICE : LOG_WARNING, "recovery", std::move(f)));
}

void Alerter::service_event(const std::string& service, int severity, const std::string& text) {
  emit(make_line(severity & LOG_PRIMASK, "service", {{"service", service}, {"detail", text}}));
}

void Alerter::emit(AlertLine line) {
  std::lock_guard lock(mu_);
  uint64_t now = clock_.now_ns();
  TokenBucket& bucket = line.severity <= LOG_CRIT ? critical_ : normal_;
  if (!bucket.take(now)) {
    ++suppressed_;
    ++pending_suppressed_;
    return;
  }
  report_suppressed_locked();  // rides along with a line that got through
  deliver_locked(line);
}

void Alerter::tick(uint64_t now_ns) {
  std::lock_guard lock(mu_);
  // The summary takes a token itself, so a storm that keeps the bucket empty
  // gets at most one summary per line let through.
  if (pending_suppressed_ && normal_.take(now_ns)) report_suppressed_locked();
}

void Alerter::report_suppressed_locked() {
  if (!pending_suppressed_) return;
  std::string n = std::to_string(pending_suppressed_);
  std::string limit = std::to_string(cfg_.syslog_burst) + " per " + format_duration(cfg_.syslog_per);
  AlertLine line;
  line.severity = LOG_WARNING;
  line.msgid = "suppressed";
  line.fields = {{"suppressed", n}, {"limit", limit}};
  line.text = "suppressed " + n + " alert lines (rate limit " + limit + ")";
  pending_suppressed_ = 0;
  deliver_locked(line);
}

void Alerter::deliver_locked(const AlertLine& line) {
  if (sinks_.empty()) return;
  for (auto& s : sinks_) s->send(line);
  ++sent_;
}

Result<void> Alerter::reconfigure(const DaemonConfig& cfg) {
  std::lock_guard lock(mu_);
  bool limits_changed = cfg.syslog_burst != cfg_.syslog_burst || cfg.syslog_per != cfg_.syslog_per;
  bool rebuild = factory_ && (cfg.syslog != cfg_.syslog || cfg.syslog_forward != cfg_.syslog_forward);
  DaemonConfig old = cfg_;
  cfg_ = cfg;
  if (limits_changed) {
    uint64_t now = clock_.now_ns();
    normal_.reset(cfg.syslog_burst, static_cast<uint64_t>(cfg.syslog_per.count()), now);
    critical_.reset(cfg.syslog_burst, static_cast<uint64_t>(cfg.syslog_per.count()), now);
  }
  if (!rebuild) return {};
  auto fresh = factory_(cfg);
  if (!fresh) {
    cfg_.syslog = old.syslog;  // the old sinks keep running with their settings
    cfg_.syslog_forward = old.syslog_forward;
    return fresh.error();
  }
  for (auto& s : sinks_) retired_failures_ += s->failures();
  sinks_ = std::move(*fresh);
  return {};
}

uint64_t Alerter::sent() const {
  std::lock_guard lock(mu_);
  return sent_;
}

uint64_t Alerter::suppressed() const {
  std::lock_guard lock(mu_);
  return suppressed_;
}

uint64_t Alerter::forward_failures() const {
  std::lock_guard lock(mu_);
  uint64_t n = retired_failures_;
  for (const auto& s : sinks_) n += s->failures();
  return n;
}

std::vector<std::string> Alerter::sinks() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& s : sinks_) out.push_back(s->describe());
  return out;
}

}  // namespace fp
