// A slow action never stops the sampling loop (issue 15 items 1 and 6): a
// [[service]] with CRIU checkpoints whose `criu dump` (or `criu restore`)
// takes 12 s (a fake criu first on the daemon's PATH: the daemon runs `criu`
// by PATH) — meanwhile the tick counter advances at its normal rate, a crash
// elsewhere is reported within its usual latency, the watchdog keeps being
// pinged and `status` shows the running action; a restore that fails falls
// back to a clean start.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "e2e_fixture.h"
#include "notify_socket.h"
#include "../time_scale.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using fp::test::scaled;
using nlohmann::json;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

namespace {

json status_of(const Daemon& d) {
  auto r = d.query({{"cmd", "status"}});
  return r.is_object() && r.contains("status") ? r["status"] : json::object();
}
uint64_t ticks(const Daemon& d) { return status_of(d)["sampling"].value("ticks", uint64_t{0}); }

// `body` as an executable `criu` in `bin`: `--version` and `check` answer at
// once (the daemon's start-up probe), the rest is the body's.
void install_fake_criu(const std::string& bin, const std::string& body) {
  fs::create_directories(bin);
  {
    std::ofstream f(bin + "/criu");
    f << "#!/bin/sh\n"
         "case \"$1\" in\n"
         "  --version) echo 'Version: 9.9'; exit 0 ;;\n"
         "  check) echo 'Looks good.'; exit 0 ;;\n"
      << body << "esac\nexit 1\n";
  }
  fs::permissions(bin + "/criu", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                      fs::perms::others_read | fs::perms::others_exec);
}

// A process elsewhere crashes while the slow action runs: how long until the
// daemon reports it.
std::chrono::milliseconds crash_elsewhere_latency(const Daemon& d) {
  const std::string crash =
      "import json, os, time\nprint(json.dumps({'culprit': os.getpid()}), flush=True)\ntime.sleep(0.3)\nos.abort()\n";
  FaultGen g("/usr/bin/python3", {"-c", crash});
  EXPECT_TRUE(g.started());
  const auto crash_started = steady::now();
  auto f = d.wait_fault("crash", g.culprit(), scaled(10s));
  const auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - crash_started);
  g.wait();
  EXPECT_TRUE(f) << describe(d.records()) << d.log();
  EXPECT_LT(latency, scaled(2s)) << "ms: " << latency.count();
  return latency;
}

}  // namespace

TEST(SlowActions, ACriuDumpOfTwelveSecondsDoesNotStopSampling) {
  const std::string dir = temp_dir();
  const std::string bin = dir + "/bin", images = dir + "/images";
  // The first dump says it began, sleeps 12 s, writes an image and says it
  // ended (later ones are quick, so the daemon stops without waiting one out).
  install_fake_criu(bin, "  dump) touch " + dir + "/dump-began; [ -e " + dir + "/dump-ended ] || sleep 12\n"
                         "    while [ $# -gt 0 ]; do [ \"$1\" = -D ] && echo x > \"$2/core.img\"; shift; done\n"
                         "    touch " + dir + "/dump-ended; exit 0 ;;\n");
  NotifySocket pings(dir + "/notify.sock");
  ASSERT_TRUE(pings.bound());
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  setenv("PATH", (bin + ":" + old_path).c_str(), 1);
  setenv("NOTIFY_SOCKET", (dir + "/notify.sock").c_str(), 1);
  setenv("WATCHDOG_USEC", "3000000", 1);  // a ping every 1.5 s
  Daemon d(kBase + R"(
[[service]]
name = "sleeper"
command = ["/bin/sleep", "1000"]
restart = "no"
stop_grace = "1s"
checkpoint = { backend = "criu", dir = ")" + images + R"(", every = "1s", keep = 2 }
)");
  setenv("PATH", old_path.c_str(), 1);
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  ASSERT_TRUE(d.ready()) << d.log();
  ASSERT_TRUE(status_of(d)["criu"].value("available", false)) << status_of(d).dump() << d.log();

  ASSERT_TRUE(wait_for([&] { return fs::exists(dir + "/dump-began"); }, scaled(15s))) << d.log();
  const auto t0 = steady::now();
  const uint64_t ticks0 = ticks(d);
  // status is rebuilt once a second: the running dump shows within that.
  json worker;
  EXPECT_TRUE(wait_for(
      [&] {
        worker = status_of(d)["action_worker"];
        return worker.value("running", "") == "criu dump of service sleeper";
      },
      scaled(3s)))
      << worker.dump();

  // A crash elsewhere, meanwhile: reported as fast as ever.
  const auto crash_latency = crash_elsewhere_latency(d);

  // Six seconds into the dump (of twelve).
  std::this_thread::sleep_for(6s - (steady::now() - t0));
  const uint64_t ticks1 = ticks(d);
  const auto t1 = steady::now();
  const bool still_dumping = !fs::exists(dir + "/dump-ended");
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  EXPECT_TRUE(still_dumping) << "the fake dump ended early: the window did not overlap it";
  // 100 ms sampling: 10 ticks a second; at least half of that on a loaded host.
  EXPECT_GE(double(ticks1 - ticks0), 5.0 * secs) << ticks0 << " -> " << ticks1 << " in " << secs << " s\n" << d.log();
  std::vector<steady::time_point> p;
  for (auto t : pings.pings())
    if (t >= t0 && t <= t1) p.push_back(t);
  EXPECT_GE(p.size(), 3u) << p.size() << " watchdog pings in " << secs << " s";
  steady::time_point last = t0;
  for (auto t : p) {
    EXPECT_LT(t - last, 3s) << "a gap in the watchdog pings";
    last = t;
  }
  EXPECT_LT(t1 - last, 3s);
  std::printf("during the dump: %.1f ticks/s over %.1f s, crash reported after %lld ms, %zu watchdog pings\n",
              double(ticks1 - ticks0) / secs, secs,
              (long long)crash_latency.count(), p.size());

  // The dump's result lands on the loop when it ends.
  EXPECT_TRUE(wait_for([&] { return d.log().find("service sleeper: checkpoint written") != std::string::npos; },
                       scaled(20s)))
      << d.log();
  EXPECT_TRUE(fs::exists(images + "/000001/core.img"));
  EXPECT_EQ(d.stop(), 0) << d.log();
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}

// Issue 15 item 1: `criu restore` runs off the loop too. The service crashes
// once it has an image; its restart restores from it, and the fake restore
// takes 12 s and fails (later ones fail at once): the loop ticks on
// meanwhile, the service shows "starting", and the start falls back through
// the older image to a clean start, which the service records say.
TEST(SlowActions, ACriuRestoreOfTwelveSecondsDoesNotStopSamplingAndAFailedOneEndsInACleanStart) {
  const std::string dir = temp_dir();
  const std::string bin = dir + "/bin", images = dir + "/images";
  install_fake_criu(bin, "  dump) while [ $# -gt 0 ]; do [ \"$1\" = -D ] && echo x > \"$2/core.img\"; shift; done\n"
                         "    exit 0 ;;\n"
                         "  restore) echo \"$3\" >> " + dir + "/restores; touch " + dir + "/restore-began\n"
                         "    [ -e " + dir + "/restore-ended ] || sleep 12; touch " + dir + "/restore-ended\n"
                         "    echo 'Error (criu/cr-restore.c:1): fake: cannot restore' > \"$3/restore.log\"\n"
                         "    exit 1 ;;\n");
  const std::string old_path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  setenv("PATH", (bin + ":" + old_path).c_str(), 1);
  // Crashes once, when the test says so (it has an image by then); runs on after that.
  Daemon d(kBase + R"(
[[service]]
name = "web"
command = ["/bin/sh", "-c", "if [ -e )" + dir + R"(/crashed ]; then exec sleep 1000; fi; while [ ! -e )" + dir +
           R"(/go ]; do sleep 0.1; done; touch )" + dir + R"(/crashed; kill -SEGV $$"]
stop_grace = "1s"
checkpoint = { backend = "criu", dir = ")" + images + R"(", every = "1s", keep = 2 }
)");
  setenv("PATH", old_path.c_str(), 1);
  ASSERT_TRUE(d.ready()) << d.log();
  ASSERT_TRUE(status_of(d)["criu"].value("available", false)) << status_of(d).dump() << d.log();
  ASSERT_TRUE(wait_for([&] { return fs::exists(images + "/000002/core.img"); }, scaled(20s))) << d.log();
  std::ofstream(dir + "/go") << "";

  ASSERT_TRUE(wait_for([&] { return fs::exists(dir + "/restore-began"); }, scaled(15s))) << d.log();
  const auto t0 = steady::now();
  const uint64_t ticks0 = ticks(d);
  json web;
  EXPECT_TRUE(wait_for(
      [&] {
        const json st = status_of(d);
        for (const auto& s : st.value("services", json::array()))
          if (s.value("name", "") == "web") web = s;
        return web.value("state", "") == "starting" &&
               st["action_worker"].value("running", "") == "criu restore of service web";
      },
      scaled(3s)))
      << web.dump() << status_of(d)["action_worker"].dump();
  const auto crash_latency = crash_elsewhere_latency(d);

  // Six seconds into the restore (of twelve).
  std::this_thread::sleep_for(6s - (steady::now() - t0));
  const uint64_t ticks1 = ticks(d);
  const double secs = std::chrono::duration<double>(steady::now() - t0).count();
  EXPECT_FALSE(fs::exists(dir + "/restore-ended")) << "the fake restore ended early: the window did not overlap it";
  EXPECT_GE(double(ticks1 - ticks0), 5.0 * secs) << ticks0 << " -> " << ticks1 << " in " << secs << " s\n" << d.log();
  std::printf("during the restore: %.1f ticks/s over %.1f s, crash reported after %lld ms\n",
              double(ticks1 - ticks0) / secs, secs, (long long)crash_latency.count());

  // Both images failed to restore: a clean start, and the records say which.
  auto is_service = [](const json& r, const std::string& event) {
    return r.value("kind", "") == "service" && r.value("service", "") == "web" && r.value("event", "") == event;
  };
  json started;
  ASSERT_TRUE(wait_for(
      [&] {
        for (const json& r : d.records())
          if (is_service(r, "started") && r.value("restore_source", "") == "clean") started = r;
        return !started.is_null();
      },
      scaled(30s)))
      << describe(d.records()) << d.log();
  EXPECT_NE(started.value("detail", "").find("clean start (2 restore(s) failed)"), std::string::npos) << started.dump();
  std::vector<json> failed;
  for (const json& r : d.records())
    if (is_service(r, "restore_failed")) failed.push_back(r);
  ASSERT_EQ(failed.size(), 2u) << describe(d.records());
  EXPECT_NE(failed[0].value("detail", "").find("fake: cannot restore; trying the older " + images + "/"),
            std::string::npos)
      << failed[0].dump();
  EXPECT_NE(failed[1].value("detail", "").find("; starting without restore"), std::string::npos) << failed[1].dump();
  EXPECT_TRUE(wait_for([&] { return fs::exists(dir + "/crashed"); }, scaled(1s)));
  EXPECT_EQ(d.stop(), 0) << d.log();
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}
