// app_errors on real programs: a python service that logs 50 errors a
// second (among ordinary lines) to its own log file opens app_errors naming
// it, the kernel (fanotify) having said who wrote; its last lines are in the
// evidence. In the same config a [[logwatch]] whose pattern does not compile
// and one whose file does not exist cost only themselves: the daemon runs,
// and its status says what it left out and what it cannot follow. A shell
// writing only ordinary lines raises nothing.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "e2e_fixture.h"
#include "services.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;

namespace {

std::string logwatch_config(const std::string& log) {
  return kBase + R"(
[[logwatch]]
name = "svc_errors"
path = ")" + log + R"("
pattern = "ERROR|Traceback"
threshold = 100
resolve = 10
window = "5s"
for = "1s"
clear = "2s"

[[logwatch]]
name = "broken_pattern"
path = ")" + log + R"("
pattern = "ERROR("

[[logwatch]]
name = "absent_file"
path = "/nonexistent/fp-e2e/app.log"
pattern = "ERROR"
)";
}

// Appends to argv[1]: `per_second` ERROR lines a second among INFO lines.
const char* kLogger = R"(
import sys, time
path, per_second = sys.argv[1], int(sys.argv[2])
with open(path, "a", buffering=1) as f:
    i = 0
    while True:
        f.write("2026-12-07 INFO request %d served\n" % i)
        if per_second:
            f.write("2026-12-07 ERROR request %d failed: \xe9\xff backend down\n" % i)
        i += 1
        time.sleep(1.0 / max(per_second, 20))
)";

}  // namespace

TEST(E2E, AServiceLoggingErrorsOpensAppErrorsNamingIt) {
  const std::string dir = temp_dir();
  const std::string log = dir + "/app.log";
  std::ofstream(log) << "2026-12-07 ERROR from before the daemon: not counted\n";
  Daemon d(logwatch_config(log));
  ASSERT_TRUE(d.ready()) << d.log();

  // The two bad sections are left out or waiting; the good one follows.
  json st = d.query({{"cmd", "status"}})["status"];
  ASSERT_TRUE(st.contains("config_left_out")) << st.dump();
  ASSERT_EQ(st["config_left_out"].size(), 1u) << st["config_left_out"].dump();
  EXPECT_NE(st["config_left_out"][0].get<std::string>().find("\"pattern\" of [[logwatch]] \"broken_pattern\""),
            std::string::npos);
  EXPECT_TRUE(wait_for(
      [&] {
        json lw = d.query({{"cmd", "status"}})["status"]["logwatch"];
        return lw["svc_errors"].value("following", false) && lw["absent_file"].contains("error");
      },
      10s))
      << d.query({{"cmd", "status"}})["status"].dump();

  ChildProcess svc({"/usr/bin/python3", "-c", kLogger, log, "50"}, dir + "/svc.out");
  const uint32_t pid = uint32_t(svc.pid());
  auto f = d.wait_fault("app_errors", pid, 30s);
  ASSERT_TRUE(f) << describe(d.records()) << "\nstatus: " << d.query({{"cmd", "status"}})["status"]["logwatch"].dump();
  RecordProperty("fault", f->dump());
  EXPECT_EQ((*f)["rule"], "svc_errors");
  const json& ev = (*f)["evidence"];
  EXPECT_EQ(ev["writer_from"], "kernel") << ev.dump();
  EXPECT_GE(ev["value"].get<double>(), 100.0);
  ASSERT_FALSE(ev["last_lines"].empty());
  const std::string last = ev["last_lines"].back().get<std::string>();
  EXPECT_NE(last.find("ERROR request"), std::string::npos) << last;
  EXPECT_EQ(last.find("INFO"), std::string::npos) << last;
  svc.stop();
  EXPECT_TRUE(d.wait_resolved("app_errors", pid, 30s)) << describe(d.records());
}

TEST(E2E, OrdinaryLogLinesRaiseNothing) {
  const std::string dir = temp_dir();
  const std::string log = dir + "/app.log";
  std::ofstream(log) << "";
  Daemon d(logwatch_config(log));
  ASSERT_TRUE(d.ready()) << d.log();
  ChildProcess svc({"/usr/bin/python3", "-c", kLogger, log, "0"}, dir + "/svc.out");
  // 3 s of INFO lines at 20 a second, read by the daemon (its counters say so).
  ASSERT_TRUE(wait_for(
      [&] { return d.query({{"cmd", "status"}})["status"]["logwatch"]["svc_errors"].value("lines", 0) >= 60; }, 30s))
      << d.query({{"cmd", "status"}})["status"]["logwatch"].dump();
  svc.stop();
  EXPECT_EQ(d.query({{"cmd", "status"}})["status"]["logwatch"]["svc_errors"].value("matched", -1), 0);
  EXPECT_FALSE(first_match(d.records(), [](const json& r) { return r.value("class", "") == "app_errors"; }))
      << describe(d.records());
}
