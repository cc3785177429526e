// [[logwatch]]: the app_errors rules. Each names a log file, an RE2 pattern
// and the usual rule keys (threshold = matching lines in `window`, `for`,
// `clear`, `resolve`, `severity`, `match`). A mistake in one section leaves
// that section out (Config::left_out) and the rest of the config in use: a
// bad pattern must not keep the daemon from watching everything else.
#include <re2/re2.h>

#include <algorithm>

#include "config/parser.h"

namespace fp::config_parse {
namespace {

constexpr size_t kMaxPathBytes = 4095;     // PATH_MAX - 1
constexpr size_t kMaxPatternBytes = 4096;  // a pattern, not a dictionary
constexpr int64_t kMaxRe2Memory = 8 << 20; // RE2's own budget per pattern

}  // namespace

void Parser::logwatches(const toml::node& n, Config& cfg) {
  const size_t before = errors_.size();
  const toml::array* arr = table_array(n, "logwatch", "watched log file");
  if (!arr) {
    soften(before, cfg.left_out);
    return;
  }
  std::map<std::string, const toml::node*> seen;
  size_t index = 0;
  for (const toml::node& e : *arr) {
    ++index;
    const size_t errors_before = errors_.size();
    if (const toml::table* t = e.as_table())
      logwatch(*t, index, seen, cfg);
    else
      error(e, "each [[logwatch]] must be a table of logwatch keys (got " + describe(e) + ")");
    soften(errors_before, cfg.left_out);
  }
}

void Parser::logwatch(const toml::table& t, size_t index, std::map<std::string, const toml::node*>& seen,
                      Config& cfg) {
  std::string where = "[[logwatch]] #" + std::to_string(index);
  const size_t errors_before = errors_.size();
  RuleConfig r = builtin_rule(FaultClass::AppErrors);
  r.enabled = true;
  r.name.clear();

  r.name = unique_name(t, where, seen, "logwatch", false);
  if (!r.name.empty() && parse_fault_class(r.name)) {  // faults are keyed by rule name
    error(*t.get("name"), "logwatch name " + quote(r.name) + " is the name of a built-in rule; pick another name");
    r.name.clear();
  }

  const toml::node* journal = t.get("journal");
  if (journal != nullptr && journal->as_boolean() && !journal->as_boolean()->get()) journal = nullptr;  // = false
  if (journal != nullptr) {
    if (const auto* b = journal->as_boolean(); b && b->get()) {
      r.logwatch.journal = true;
    } else if (const auto* s = journal->as_string(); s && !s->get().empty() && s->get()[0] == '/' &&
                                                       s->get().size() <= kMaxPathBytes &&
                                                       s->get().find('\0') == std::string::npos) {
      r.logwatch.journal = true;
      r.logwatch.journal_dir = s->get();
    } else {
      error(*journal, "\"journal\" of " + where + " must be true (the host's journal) or the absolute path of a "
                      "directory of journal files (got " + describe(*journal) + ")");
    }
  }
  if (const toml::node* n = t.get("unit")) {
    const auto* s = n->as_string();
    if (journal == nullptr)
      error(*n, "\"unit\" selects journal entries; it needs \"journal = true\" in " + where);
    else if (!s || s->get().empty() || s->get().size() > 256 || s->get().find('/') != std::string::npos ||
             s->get().find('\0') != std::string::npos)
      error(*n, "\"unit\" of " + where + " must be a systemd unit name such as \"api.service\" (got " +
                    describe(*n) + ")");
    else
      r.logwatch.unit = s->get();
  }

  if (const toml::node* n = t.get("path"); n != nullptr && journal != nullptr) {
    error(*n, where + " reads either a file (\"path\") or the journal (\"journal\"), not both");
  } else if (journal != nullptr) {
    // the journal it is
  } else if (n != nullptr) {
    if (auto v = absolute_path(*n, "path", "\"/var/log/api/error.log\"")) {
      const bool dotdot = v->find("/../") != std::string::npos || v->ends_with("/..");
      if (v->size() > kMaxPathBytes || v->find('\0') != std::string::npos || dotdot || v->back() == '/')
        error(*n, "\"path\" of " + where + " must be a file's absolute path, no \"..\", at most " +
                      std::to_string(kMaxPathBytes) + " bytes (got " + describe(*n) + ")");
      else
        r.logwatch.path = *v;
    }
  } else {
    error(t, where + " needs a \"path\" (the log file to follow, such as \"/var/log/api/error.log\") or "
             "\"journal = true\"");
  }

  if (const toml::node* n = t.get("pattern")) {
    if (auto v = string(*n, "pattern", "\"ERROR|Traceback\"")) {
      if (v->empty() || v->size() > kMaxPatternBytes) {
        error(*n, "\"pattern\" of " + where + " must be 1 to " + std::to_string(kMaxPatternBytes) +
                      " bytes of RE2 syntax (got " + std::to_string(v->size()) + " bytes)");
      } else {
        RE2::Options opts;
        opts.set_log_errors(false);
        opts.set_max_mem(kMaxRe2Memory);
        RE2 re(*v, opts);
        if (!re.ok()) {
          error(*n, "\"pattern\" of " + where + " is not a valid RE2 pattern: " + re.error() + " (got " +
                        describe(*n) + ")");
        } else if (auto groups = re.NamedCapturingGroups(); groups.count("pid") == 0 && groups.size() > 0) {
          error(*n, "\"pattern\" of " + where + " names a group other than \"pid\"; the only named group it may "
                        "have is (?P<pid>[0-9]+), the writer's pid in the line");
        } else {
          r.logwatch.pattern = *v;
        }
      }
    }
  } else {
    error(t, where + " needs a \"pattern\": an RE2 pattern a line must match to count, such as \"ERROR\"");
  }

  apply_rule(t, r, where, true);
  if (errors_.size() == errors_before) cfg.rules.push_back(std::move(r));
}

// A [[logwatch]] name must not be taken by an added [[rule]] (faults are
// keyed by rule name). The sections are read in key order, so this is
// checked when both are in.
void Parser::logwatch_names(Config& cfg) {
  std::map<std::string, size_t> others;
  for (const RuleConfig& r : cfg.rules)
    if (r.cls != FaultClass::AppErrors) others.emplace(r.name, 0);
  auto it = std::remove_if(cfg.rules.begin(), cfg.rules.end(), [&](const RuleConfig& r) {
    if (r.cls != FaultClass::AppErrors || !r.enabled || !others.contains(r.name)) return false;
    cfg.left_out.push_back(file_ + ": [[logwatch]] " + quote(r.name) +
                           " has the name of a [[rule]]; names must be unique (the logwatch is left out)");
    return true;
  });
  cfg.rules.erase(it, cfg.rules.end());
}

}  // namespace fp::config_parse
