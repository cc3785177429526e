// A slow action never stops the sampling loop (issue 15 item 6): a [[service]]
// with CRIU checkpoints whose `criu dump` takes 12 s (a fake criu first on the
// daemon's PATH: the daemon runs `criu` by PATH) — meanwhile the tick counter
// advances at its normal rate, a crash elsewhere is reported within its usual
// latency, the watchdog keeps being pinged and `status` shows the running dump.
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

}  // namespace

TEST(SlowActions, ACriuDumpOfTwelveSecondsDoesNotStopSampling) {
  const std::string dir = temp_dir();
  const std::string bin = dir + "/bin", images = dir + "/images";
  fs::create_directories(bin);
  // criu --version and check answer at once (the daemon's start-up probe);
  // the first dump says it began, sleeps 12 s, writes an image and says it
  // ended (later ones are quick, so the daemon stops without waiting one out).
  {
    std::ofstream f(bin + "/criu");
    f << "#!/bin/sh\n"
         "case \"$1\" in\n"
         "  --version) echo 'Version: 9.9'; exit 0 ;;\n"
         "  check) echo 'Looks good.'; exit 0 ;;\n"
         "  dump) touch " << dir << "/dump-began; [ -e " << dir << "/dump-ended ] || sleep 12\n"
         "    while [ $# -gt 0 ]; do [ \"$1\" = -D ] && echo x > \"$2/core.img\"; shift; done\n"
         "    touch " << dir << "/dump-ended; exit 0 ;;\n"
         "esac\n"
         "exit 1\n";
  }
  fs::permissions(bin + "/criu", fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                      fs::perms::others_read | fs::perms::others_exec);
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
  const std::string crash =
      "import json, os, time\nprint(json.dumps({'culprit': os.getpid()}), flush=True)\ntime.sleep(0.3)\nos.abort()\n";
  FaultGen g("/usr/bin/python3", {"-c", crash});
  ASSERT_TRUE(g.started());
  const auto crash_started = steady::now();
  auto f = d.wait_fault("crash", g.culprit(), scaled(10s));
  const auto crash_latency = steady::now() - crash_started;
  g.wait();
  ASSERT_TRUE(f) << describe(d.records()) << d.log();
  EXPECT_LT(crash_latency, scaled(2s)) << "ms: " << std::chrono::duration_cast<std::chrono::milliseconds>(crash_latency).count();

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
              (long long)std::chrono::duration_cast<std::chrono::milliseconds>(crash_latency).count(), p.size());

  // The dump's result lands on the loop when it ends.
  EXPECT_TRUE(wait_for([&] { return d.log().find("service sleeper: checkpoint written") != std::string::npos; },
                       scaled(20s)))
      << d.log();
  EXPECT_TRUE(fs::exists(images + "/000001/core.img"));
  EXPECT_EQ(d.stop(), 0) << d.log();
  std::error_code ec;
  if (!::testing::Test::HasFailure()) fs::remove_all(dir, ec);
}
