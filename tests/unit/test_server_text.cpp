// The CLI's human text for `status` and `events`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server/text.h"

namespace fp {
namespace {

using Json = nlohmann::json;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(StatusText, SectionsInOrderWithUnitsAndUnknownKeys) {
  Json st = {
      {"version", "0.1.0"},
      {"zeta_unknown", {{"answer", 42}}},
      {"criu", {{"available", false}, {"reason", "criu check: vdso"}}},
      {"probe", {{"hooks", Json::array({{{"name", "sched_switch"}, {"mode", "tp_btf"}},
                                        {{"name", "sched_process_hang"}, {"mode", nullptr}}})},
                 {"tick_ns", 1500000}}},
      {"maps", {{"proc_slots", {{"used", 120}, {"max", 8192}}}, {"ringbuf_bytes", 4194304}}},
      {"rules", Json::array({"cpu_runaway", "hang"})},
      {"policies", Json::array()},
  };
  std::string t = status_to_text(st);
  EXPECT_TRUE(has(t, "version: 0.1.0\n")) << t;
  // Known sections in their fixed order, the unknown one after them.
  size_t probe = t.find("Probe\n"), maps = t.find("Maps\n"), rules = t.find("Rules\n"),
         policies = t.find("Policies\n"), criu = t.find("CRIU\n"), zeta = t.find("Zeta unknown\n");
  ASSERT_NE(probe, std::string::npos) << t;
  EXPECT_LT(probe, maps);
  EXPECT_LT(maps, rules);
  EXPECT_LT(rules, policies);
  EXPECT_LT(policies, criu);
  EXPECT_LT(criu, zeta);
  EXPECT_TRUE(has(t, "- sched_switch: mode=tp_btf")) << t;
  EXPECT_TRUE(has(t, "- sched_process_hang: mode=-")) << t;
  EXPECT_TRUE(has(t, "tick_ns: 1.5 ms")) << t;
  EXPECT_TRUE(has(t, "ringbuf_bytes: 4.0 MiB")) << t;
  EXPECT_TRUE(has(t, "used: 120")) << t;
  EXPECT_TRUE(has(t, "cpu_runaway, hang")) << t;
  EXPECT_TRUE(has(t, "available: no")) << t;
  EXPECT_TRUE(has(t, "reason: criu check: vdso")) << t;
  EXPECT_TRUE(has(t, "Policies\n  (none)")) << t;
  EXPECT_TRUE(has(t, "answer: 42")) << t;
}

TEST(EventText, FaultResolvedActionAndUnknown) {
  Json fault = {{"time", "2026-11-26T08:00:00.123Z"}, {"kind", "fault"},   {"class", "cpu_runaway"},
                {"severity", "warning"},               {"rule", "cpu_runaway"}, {"pid", 1234},
                {"comm", "burner"},                    {"victims", {5, 6}},
                {"evidence", {{"cpu_share", 0.987}, {"window_ns", 1000000000}}}};
  std::string f = event_to_text(fault, 0);
  EXPECT_TRUE(has(f, "2026-11-26T08:00:00.123Z")) << f;
  EXPECT_TRUE(has(f, "fault")) << f;
  EXPECT_TRUE(has(f, "cpu_runaway")) << f;
  EXPECT_TRUE(has(f, "1234")) << f;
  EXPECT_TRUE(has(f, "burner")) << f;
  EXPECT_TRUE(has(f, "victims=2")) << f;
  EXPECT_TRUE(has(f, "cpu_share=0.987")) << f;
  EXPECT_TRUE(has(f, "window_ns=1 s")) << f;
  EXPECT_FALSE(has(f, "rule=")) << f;  // the rule is the class's own
  EXPECT_EQ(f.find('\n'), std::string::npos);

  Json resolved = fault;
  resolved["kind"] = "resolved";
  resolved["duration_ms"] = 42000;
  resolved["rule"] = "my_rule";
  std::string r = event_to_text(resolved, 0);
  EXPECT_TRUE(has(r, "after 42 s")) << r;
  EXPECT_TRUE(has(r, "rule=my_rule")) << r;

  Json action = {{"time", "2026-11-26T08:00:01.000Z"}, {"kind", "action"}, {"class", "cpu_runaway"},
                 {"pid", 1234}, {"comm", "burner"}, {"rule", "cpu_runaway"}, {"policy", "batch"},
                 {"action", {{"type", "restart"}, {"result", "ok"}, {"detail", "SIGTERM, exited"},
                             {"step", "restart"}, {"new_pid", 1240}}}};
  std::string a = event_to_text(action, 0);
  EXPECT_TRUE(has(a, "restart ok: SIGTERM, exited -> pid 1240")) << a;

  Json odd = {{"kind", "recovery"}, {"pid", 7}, {"verdict", "healthy"}};
  std::string o = event_to_text(odd, 0);
  EXPECT_TRUE(has(o, "recovery")) << o;
  EXPECT_TRUE(has(o, "verdict=healthy")) << o;

  std::string cut = event_to_text(fault, 60);
  EXPECT_EQ(cut.size(), 60u);
  EXPECT_EQ(cut.substr(57), "...");
  EXPECT_EQ(event_to_text(Json("just a string"), 0), "just a string");
}

}  // namespace
}  // namespace fp
