#include "server/text.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

#include "util/text.h"

namespace fp {
namespace {

using Json = nlohmann::json;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string number_text(double v) {
  char buf[64];
  if ((v == std::floor(v) || std::fabs(v) >= 1000) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string bytes_text(double b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024 && u < 4) {
    b /= 1024;
    u++;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string ns_text(double ns) {
  char buf[64];
  double a = std::fabs(ns);
  if (a >= 1e9)
    std::snprintf(buf, sizeof buf, "%.3g s", ns / 1e9);
  else if (a >= 1e6)
    std::snprintf(buf, sizeof buf, "%.3g ms", ns / 1e6);
  else if (a >= 1e3)
    std::snprintf(buf, sizeof buf, "%.3g us", ns / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  return buf;
}

std::string scalar_text(const Json& v, std::string_view key = {}) {
  switch (v.type()) {
    case Json::value_t::null: return "-";
    case Json::value_t::boolean: return v.get<bool>() ? "yes" : "no";
    // What the daemon sends is escaped already; this keeps a raw byte from
    // any other source (an older daemon, a local probe) off the terminal.
    case Json::value_t::string: return display_text(v.get_ref<const std::string&>());
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: {
      double d = v.get<double>();
      if (ends_with(key, "_bytes")) return bytes_text(d);
      if (ends_with(key, "_ns")) return ns_text(d);
      if (v.is_number_float()) return number_text(d);
      return v.dump();
    }
    default: return safe_dump(v);
  }
}

// "a=1 b=x c.d=2": an object on one line, nested objects flattened.
void flat(const Json& obj, const std::string& prefix, std::string& out) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    std::string key = prefix.empty() ? display_text(it.key()) : prefix + "." + display_text(it.key());
    if (it->is_object()) {
      flat(*it, key, out);
      continue;
    }
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    if (it->is_array()) {
      std::string items;
      for (const auto& e : *it) items += (items.empty() ? "" : ",") + (e.is_object() ? safe_dump(e) : scalar_text(e));
      out += "[" + items + "]";
    } else {
      out += scalar_text(*it, it.key());
    }
  }
}

bool all_scalars(const Json& arr) {
  return std::all_of(arr.begin(), arr.end(), [](const Json& e) { return e.is_primitive(); });
}

void render(const Json& v, int indent, std::string& out);

void render_entry(const std::string& raw_key, const Json& v, int indent, std::string& out) {
  std::string pad(size_t(indent), ' ');
  const std::string key = display_text(raw_key);
  if (v.is_object()) {
    if (v.empty()) {
      out += pad + key + ": (none)\n";
      return;
    }
    out += pad + key + ":\n";
    render(v, indent + 2, out);
  } else if (v.is_array()) {
    if (v.empty()) {
      out += pad + key + ": (none)\n";
    } else if (all_scalars(v)) {
      std::string items;
      for (const auto& e : v) items += (items.empty() ? "" : ", ") + scalar_text(e);
      out += pad + key + ": " + items + "\n";
    } else {
      out += pad + key + ":\n";
      render(v, indent + 2, out);
    }
  } else {
    out += pad + key + ": " + scalar_text(v, key) + "\n";
  }
}

void render(const Json& v, int indent, std::string& out) {
  std::string pad(size_t(indent), ' ');
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) render_entry(it.key(), *it, indent, out);
  } else if (v.is_array()) {
    // A list of records: one line each, led by its name when it has one.
    for (const auto& e : v) {
      if (!e.is_object()) {
        out += pad + "- " + scalar_text(e) + "\n";
        continue;
      }
      Json rest = e;
      std::string head;
      for (const char* k : {"name", "hook", "map", "rule", "policy", "service"}) {
        auto it = rest.find(k);
        if (it != rest.end() && it->is_string()) {
          head = display_text(it->get_ref<const std::string&>());
          rest.erase(k);
          break;
        }
      }
      std::string body;
      flat(rest, "", body);
      out += pad + "- " + head + (head.empty() || body.empty() ? "" : ": ") + body + "\n";
    }
  } else {
    out += pad + scalar_text(v) + "\n";
  }
}

std::string title(const std::string& key) {
  std::string t = display_text(key);
  std::replace(t.begin(), t.end(), '_', ' ');
  if (!t.empty() && t[0] >= 'a' && t[0] <= 'z') t[0] = char(t[0] - 'a' + 'A');
  if (t == "Criu") t = "CRIU";
  return t;
}

}  // namespace

std::string status_to_text(const Json& status) {
  if (!status.is_object()) return scalar_text(status) + "\n";
  static const std::array<const char*, 12> kOrder = {"daemon",   "probe",    "maps",    "drops",
                                                     "rules",    "policies", "services", "actions",
                                                     "criu",     "syslog",   "metrics",  "socket"};
  std::vector<std::string> keys;
  for (const char* k : kOrder)
    if (status.contains(k)) keys.push_back(k);
  for (auto it = status.begin(); it != status.end(); ++it)
    if (std::find(kOrder.begin(), kOrder.end(), it.key()) == kOrder.end()) keys.push_back(it.key());

  std::string out, scalars;
  // Loose top-level values (version, uptime, ...) lead, untitled.
  for (const auto& k : keys)
    if (status[k].is_primitive()) render_entry(k, status[k], 0, scalars);
  out += scalars;
  for (const auto& k : keys) {
    const Json& v = status[k];
    if (v.is_primitive()) continue;
    if (!out.empty()) out += '\n';
    out += title(k) + "\n";
    if (v.empty())
      out += "  (none)\n";
    else if (v.is_array() && all_scalars(v))
      render_entry("items", v, 2, out);
    else
      render(v, 2, out);
  }
  return out;
}

std::string event_to_text(const Json& e, size_t width) {
  if (!e.is_object()) return scalar_text(e);
  auto str = [&](const char* k) -> std::string {
    auto it = e.find(k);
    if (it == e.end() || it->is_null()) return "-";
    return scalar_text(*it);
  };
  std::string kind = str("kind");
  char head[256];
  std::snprintf(head, sizeof head, "%-24s %-9s %-16s %7s %-16s", str("time").c_str(), kind.c_str(),
                str("class").c_str(), str("pid").c_str(), str("comm").c_str());
  std::string summary;
  if (kind == "action" && e.contains("action") && e["action"].is_object()) {
    const Json& a = e["action"];
    auto get = [&](const char* k) { return a.contains(k) ? scalar_text(a[k]) : std::string(); };
    summary = get("type") + " " + get("result");
    if (!get("step").empty() && get("step") != get("type")) summary += " (" + get("step") + ")";
    if (!get("detail").empty()) summary += ": " + get("detail");
    if (a.contains("new_pid") && !a["new_pid"].is_null()) summary += " -> pid " + get("new_pid");
  } else {
    if (e.contains("severity")) summary += str("severity");
    if (e.contains("rule") && str("rule") != str("class")) summary += " rule=" + str("rule");
    if (e.contains("duration_ms") && e["duration_ms"].is_number())
      summary += " after " + ns_text(e["duration_ms"].get<double>() * 1e6);
    if (e.contains("victims") && e["victims"].is_array() && !e["victims"].empty())
      summary += " victims=" + std::to_string(e["victims"].size());
    if (e.contains("evidence") && e["evidence"].is_object()) {
      std::string ev;
      flat(e["evidence"], "", ev);
      summary += " " + ev;
    }
    // Records this CLI does not know: show what is left.
    static const std::array<const char*, 14> kShown = {"time",     "kind",     "class",   "pid",      "comm",
                                                       "severity", "rule",     "evidence", "victims",  "duration_ms",
                                                       "start_ns", "cgroup",   "unit",     "container"};
    Json rest = Json::object();
    for (auto it = e.begin(); it != e.end(); ++it)
      if (std::find(kShown.begin(), kShown.end(), it.key()) == kShown.end()) rest[it.key()] = *it;
    if (!rest.empty()) {
      std::string more;
      flat(rest, "", more);
      summary += " " + more;
    }
  }
  size_t start = summary.find_first_not_of(' ');
  summary = start == std::string::npos ? "" : summary.substr(start);
  std::string line = std::string(head) + "  " + summary;
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (width > 3) return cut_columns(line, width);  // by code point: never half a UTF-8 sequence
  return line;
}

}  // namespace fp
