// A restore from a checkpoint taken while the fault was already developing
// brings the fault back: the daemon falls back to an older checkpoint, then
// to a clean start, says which in each action record, and does not call the
// ladder exhausted while it has something left to fall back to.
//
// The service is faultgen counter with a sticky injection ("+crash:1500ms"):
// the crash is part of its state, so every checkpoint written after the
// injection carries it and a counter restored from one crashes again 1.5 s
// later, as a service whose checkpoint holds a poisonous request would.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../time_scale.h"
#include "e2e_fixture.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using fp::test::scaled;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The n-th record (1-based) satisfying pred, waiting up to timeout.
std::optional<json> nth_record(const Daemon& d, const std::function<bool(const json&)>& pred, size_t n,
                               std::chrono::milliseconds timeout) {
  std::optional<json> found;
  wait_for(
      [&] {
        size_t seen = 0;
        for (const json& r : d.records())
          if (pred(r) && ++seen == n) {
            found = r;
            return true;
          }
        return false;
      },
      timeout);
  return found;
}

bool is_restore(const json& r) { return is_action(r, "restore", "ok", 0); }
bool is_recovery(const json& r) { return r.value("kind", "") == "recovery"; }

}  // namespace

TEST(RestoreFallback, PoisonedCheckpointsFallBackToAnOlderOneThenToACleanStart) {
  const std::string dir = temp_dir();
  const std::string ckpt = dir + "/ckpt";
  fs::create_directories(ckpt);
  // In place before the counter starts: it turns faulty at its first tick,
  // so every checkpoint it writes carries the crash.
  std::ofstream(ckpt + ".inject") << "+crash:1500ms\n";
  Daemon d(R"(
sample_interval = "100ms"
[rules.anomaly]
enabled = false

[[service]]
name = "counter"
command = [")" + std::string(FP_FAULTGEN_BIN) + R"(", "counter", "--dir", ")" + ckpt +
           R"(", "--every", "200ms", "--keep", "1000"]
restart = "no"
stop_grace = "1s"
checkpoint = { backend = "app", dir = ")" + ckpt + R"(" }

[[policy]]
name = "counter"
match = { service = "counter" }
on.crash = ["restore"]
cooldown = "1s"
recovery_window = "4s"
)");
  ASSERT_TRUE(d.ready());

  // 1: the first crash, restored from the newest checkpoint (poisoned)
  auto first = nth_record(d, is_restore, 1, scaled(20s));
  ASSERT_TRUE(first) << describe(d.records()) << d.log();
  EXPECT_EQ((*first)["action"].value("restore_source", ""), "newest") << first->dump();

  // 2: it crashed again within the window: an older checkpoint, the oldest kept
  auto verdict1 = nth_record(d, is_recovery, 1, scaled(20s));
  ASSERT_TRUE(verdict1) << describe(d.records());
  EXPECT_FALSE((*verdict1)["recovery"].value("recovered", true));
  const std::string detail1 = (*verdict1)["recovery"].value("detail", "");
  EXPECT_NE(detail1.find("its checkpoint brought the fault back; restoring again from an older checkpoint"),
            std::string::npos)
      << detail1;
  auto second = nth_record(d, is_restore, 2, scaled(10s));
  ASSERT_TRUE(second) << describe(d.records());
  EXPECT_EQ((*second)["action"].value("restore_source", ""), "older") << second->dump();
  const std::string from1 = (*first)["action"].value("detail", "");
  const std::string from2 = (*second)["action"].value("detail", "");
  EXPECT_NE(from2.find("(older: the newer ones brought the fault back)"), std::string::npos) << from2;
  EXPECT_NE(from1, from2);

  // 3: the older one had it too: a clean start
  auto verdict2 = nth_record(d, is_recovery, 2, scaled(20s));
  ASSERT_TRUE(verdict2) << describe(d.records());
  EXPECT_FALSE((*verdict2)["recovery"].value("recovered", true));
  EXPECT_NE((*verdict2)["recovery"].value("detail", "").find("restoring again from a clean start"), std::string::npos)
      << verdict2->dump();
  auto third = nth_record(d, is_restore, 3, scaled(10s));
  ASSERT_TRUE(third) << describe(d.records());
  EXPECT_EQ((*third)["action"].value("restore_source", ""), "clean") << third->dump();

  // 4: the clean start holds
  auto verdict3 = nth_record(d, is_recovery, 3, scaled(20s));
  ASSERT_TRUE(verdict3) << describe(d.records());
  EXPECT_TRUE((*verdict3)["recovery"].value("recovered", false)) << verdict3->dump();
  for (const json& r : d.records()) {
    if (is_recovery(r)) {
      EXPECT_EQ(r["recovery"].value("detail", "").find("exhausted"), std::string::npos) << r.dump();
    }
  }
  // the last start was a plain one (no FAULTPROBE_RESTORE_FROM), and it is still counting
  std::optional<json> last_start;
  for (const json& r : d.records())
    if (r.value("kind", "") == "service" && r.value("event", "") == "started") last_start = r;
  ASSERT_TRUE(last_start);
  EXPECT_NE(last_start->value("detail", "").find("clean start"), std::string::npos) << last_start->dump();
  const std::string log = slurp(d.dir() + "/logs/counter.log");
  EXPECT_NE(log.find("(carried by the checkpoint)"), std::string::npos) << log;
  EXPECT_EQ(kill(last_start->value("pid", 0), 0), 0) << log;
}
