// [[policy]], [[service]], [limits], [daemon]: parsing, defaults and every
// complaint with its FILE:LINE:COLUMN; the ladder step and address syntaxes.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "config/config.h"

namespace fp {
namespace {

using namespace std::chrono_literals;

Config parsed(std::string_view text) {
  auto r = parse_config(text, "t.toml");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : Config{};
}

std::string error_of(std::string_view text) {
  auto r = parse_config(text, "t.toml");
  EXPECT_FALSE(r.ok()) << "accepted:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.error().code, EINVAL);
  return r.error().message;
}

LadderStep step(std::string_view text) {
  auto r = parse_ladder_step(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : LadderStep{};
}

std::string step_error(std::string_view text) {
  auto r = parse_ladder_step(text);
  EXPECT_FALSE(r.ok()) << "accepted " << text;
  return r.ok() ? "" : r.error().message;
}

// The issue's example, verbatim.
constexpr std::string_view kIssueExample = R"(
[[policy]]
name = "batch"
match = { comm = "batch-worker" }       # or exe = "/opt/batch/*", cgroup = "/batch/*", unit = "x@*.service", uid = 1000
on.cpu_runaway = ["throttle:cpu=20%", "restart"]
cooldown = "30s"
dry_run = false

[[service]]
name = "counter"
command = ["/usr/bin/python3", "/opt/counter.py"]
restart = "on-failure"
checkpoint = { backend = "app", dir = "/var/lib/counter/ckpt" }   # or backend = "criu", every = "30s"
)";

TEST(PolicyConfig, IssueExample) {
  Config c = parsed(kIssueExample);
  ASSERT_EQ(c.policies.size(), 1u);
  const PolicyConfig& p = c.policies[0];
  EXPECT_EQ(p.name, "batch");
  EXPECT_EQ(p.match.comm, "batch-worker");
  EXPECT_FALSE(p.match.exe || p.match.cgroup || p.match.unit || p.match.uid);
  ASSERT_EQ(p.on.size(), 1u);
  EXPECT_EQ(p.on[0].first, FaultClass::CpuRunaway);
  const auto* ladder = p.ladder(FaultClass::CpuRunaway);
  ASSERT_NE(ladder, nullptr);
  ASSERT_EQ(ladder->size(), 2u);
  EXPECT_EQ((*ladder)[0].type, ActionType::Throttle);
  EXPECT_EQ((*ladder)[0].limits.cpu_share, 0.2);
  EXPECT_EQ((*ladder)[0].text, "throttle:cpu=20%");
  EXPECT_EQ((*ladder)[1].type, ActionType::Restart);
  EXPECT_EQ(p.ladder(FaultClass::Hang), nullptr);
  EXPECT_EQ(p.cooldown, 30s);
  EXPECT_EQ(p.recovery_window, 10s);  // default
  EXPECT_EQ(p.budget, 5u);            // default
  EXPECT_FALSE(p.dry_run);

  ASSERT_EQ(c.services.size(), 1u);
  const ServiceConfig& s = c.services[0];
  EXPECT_EQ(s.name, "counter");
  EXPECT_EQ(s.command, (std::vector<std::string>{"/usr/bin/python3", "/opt/counter.py"}));
  EXPECT_EQ(s.restart, ServiceConfig::Restart::OnFailure);
  EXPECT_EQ(s.checkpoint.backend, CheckpointConfig::Backend::App);
  EXPECT_EQ(s.checkpoint.dir, "/var/lib/counter/ckpt");
  EXPECT_EQ(s.checkpoint.every, 30s);
  EXPECT_EQ(s.checkpoint.keep, 3u);
  EXPECT_EQ(s.user, "");
  EXPECT_EQ(s.cwd, "");
  EXPECT_EQ(s.stop_grace, 5s);
  EXPECT_EQ(s.crash_loop_limit, 5u);
  // The rules are untouched.
  EXPECT_EQ(c.rules.size(), default_config().rules.size());
}

TEST(PolicyConfig, EveryKey) {
  Config c = parsed(R"(
metrics_listen = "127.0.0.1:9464"

[[policy]]
name = "db"
match = { comm = "postgres*", exe = "/usr/lib/postgresql/*", cgroup = "/db/*", unit = "postgresql@*.service", uid = 26 }
on.memory_leak = ["throttle:memory=256M", "restart"]
on.fork_bomb = ["throttle:pids=64", "kill"]
on.crash = ["restore", "restart"]
cooldown = "1m"
recovery_window = "20s"
budget = 3
dry_run = true

[[policy]]
name = "io"
match = { uid = 1000 }
on.io_storm = ["throttle:io=10M,cpu=50%"]

[[service]]
name = "counter_2.x-y"
command = ["/opt/counter", "--state", ""]
user = "nobody"
cwd = "/var/lib/counter"
env = { LANG = "C.UTF-8", EMPTY = "" }
restart = "always"
stop_grace = "2s"
backoff_initial = "200ms"
backoff_max = "10s"
crash_loop_limit = 4
crash_loop_window = "2m"
checkpoint = { backend = "criu", dir = "/var/lib/counter/criu", every = "15s", keep = 2 }

[limits]
actions_per_minute = 12

[daemon]
syslog = false
syslog_forward = "tcp://[fd00::1]:6514"
syslog_burst = 5
syslog_per = "1m"
socket = "/run/fp.sock"
socket_group = "adm"
metrics_top_n = 7
pin_dir = "/sys/fs/bpf/fp2"
lock_path = "/run/fp2.lock"
max_procs = 4096
)");
  ASSERT_EQ(c.policies.size(), 2u);  // file order
  const PolicyConfig& db = c.policies[0];
  EXPECT_EQ(db.name, "db");
  EXPECT_EQ(db.match.comm, "postgres*");
  EXPECT_EQ(db.match.exe, "/usr/lib/postgresql/*");
  EXPECT_EQ(db.match.cgroup, "/db/*");
  EXPECT_EQ(db.match.unit, "postgresql@*.service");
  EXPECT_EQ(db.match.uid, 26u);
  ASSERT_NE(db.ladder(FaultClass::MemoryLeak), nullptr);
  EXPECT_EQ(db.ladder(FaultClass::MemoryLeak)->at(0).limits.memory_bytes, 256ull << 20);
  EXPECT_EQ(db.ladder(FaultClass::ForkBomb)->at(0).limits.pids, 64u);
  EXPECT_EQ(db.ladder(FaultClass::ForkBomb)->at(1).type, ActionType::Kill);
  ASSERT_NE(db.ladder(FaultClass::Crash), nullptr);
  EXPECT_EQ(db.ladder(FaultClass::Crash)->at(0).type, ActionType::Restore);
  EXPECT_EQ(db.cooldown, 60s);
  EXPECT_EQ(db.recovery_window, 20s);
  EXPECT_EQ(db.budget, 3u);
  EXPECT_TRUE(db.dry_run);
  const PolicyConfig& io = c.policies[1];
  EXPECT_EQ(io.match.uid, 1000u);
  const LadderStep& s = io.ladder(FaultClass::IoStorm)->at(0);
  EXPECT_EQ(s.limits.io_bps, 10ull << 20);
  EXPECT_EQ(s.limits.cpu_share, 0.5);

  ASSERT_EQ(c.services.size(), 1u);
  const ServiceConfig& svc = c.services[0];
  EXPECT_EQ(svc.name, "counter_2.x-y");
  EXPECT_EQ(svc.command, (std::vector<std::string>{"/opt/counter", "--state", ""}));
  EXPECT_EQ(svc.user, "nobody");
  EXPECT_EQ(svc.cwd, "/var/lib/counter");
  // Keys of a TOML table come in name order.
  EXPECT_EQ(svc.env, (std::vector<std::pair<std::string, std::string>>{{"EMPTY", ""}, {"LANG", "C.UTF-8"}}));
  EXPECT_EQ(svc.restart, ServiceConfig::Restart::Always);
  EXPECT_EQ(svc.stop_grace, 2s);
  EXPECT_EQ(svc.backoff_initial, 200ms);
  EXPECT_EQ(svc.backoff_max, 10s);
  EXPECT_EQ(svc.crash_loop_limit, 4u);
  EXPECT_EQ(svc.crash_loop_window, 120s);
  EXPECT_EQ(svc.checkpoint.backend, CheckpointConfig::Backend::Criu);
  EXPECT_EQ(svc.checkpoint.dir, "/var/lib/counter/criu");
  EXPECT_EQ(svc.checkpoint.every, 15s);
  EXPECT_EQ(svc.checkpoint.keep, 2u);

  EXPECT_EQ(c.limits.global_per_minute, 12u);
  const DaemonConfig& d = c.daemon;
  EXPECT_FALSE(d.syslog);
  EXPECT_EQ(d.syslog_forward, "tcp://[fd00::1]:6514");
  EXPECT_EQ(d.syslog_burst, 5u);
  EXPECT_EQ(d.syslog_per, 60s);
  EXPECT_EQ(d.socket_path, "/run/fp.sock");
  EXPECT_EQ(d.socket_group, "adm");
  EXPECT_EQ(d.metrics_listen, "127.0.0.1:9464");  // the top-level spelling
  EXPECT_EQ(d.metrics_top_n, 7u);
  EXPECT_EQ(d.pin_dir, "/sys/fs/bpf/fp2");
  EXPECT_EQ(d.lock_path, "/run/fp2.lock");
  EXPECT_EQ(d.max_procs, 4096u);
}

TEST(PolicyConfig, MetricsListenInDaemonAndOff) {
  EXPECT_EQ(parsed("[daemon]\nmetrics_listen = \"[::1]:9100\"\n").daemon.metrics_listen, "[::1]:9100");
  EXPECT_EQ(parsed("metrics_listen = \"\"\n").daemon.metrics_listen, "");
  EXPECT_EQ(parsed("[daemon]\nsyslog_forward = \"udp://loghost:514\"\n").daemon.syslog_forward,
            "udp://loghost:514");
}

TEST(PolicyConfig, LaddersAsAnInlineTable) {
  Config c = parsed("[[policy]]\nname = \"a\"\nmatch = { exe = \"/opt/*\" }\n"
                    "on = { hang = [\"kill\"], crash_loop = [\"restore\", \"restart\"] }\n");
  ASSERT_EQ(c.policies.size(), 1u);
  ASSERT_NE(c.policies[0].ladder(FaultClass::Hang), nullptr);
  ASSERT_NE(c.policies[0].ladder(FaultClass::CrashLoop), nullptr);
  EXPECT_EQ(c.policies[0].ladder(FaultClass::CrashLoop)->size(), 2u);
}

TEST(PolicyConfig, PolicyNamesNeedNotBeRuleNames) {
  // A policy named like a class or like no rule at all is fine: the two name spaces are apart.
  Config c = parsed("[[policy]]\nname = \"cpu_runaway\"\nmatch = { comm = \"x\" }\n"
                    "[[policy]]\nname = \"nothing-like-a-rule\"\nmatch = { comm = \"y\" }\n");
  EXPECT_EQ(c.policies.size(), 2u);
  EXPECT_TRUE(c.policies[0].on.empty());  // a policy without ladders acts on nothing
}

TEST(PolicyConfig, DefaultsHaveNoPoliciesAndSensibleDaemon) {
  Config c = default_config();
  EXPECT_TRUE(c.policies.empty());
  EXPECT_TRUE(c.services.empty());
  EXPECT_EQ(c.limits.global_per_minute, 30u);
  EXPECT_TRUE(c.daemon.syslog);
  EXPECT_EQ(c.daemon.syslog_forward, "");
  EXPECT_EQ(c.daemon.syslog_burst, 20u);
  EXPECT_EQ(c.daemon.syslog_per, 10s);
  EXPECT_EQ(c.daemon.socket_path, "/run/faultprobe/faultprobe.sock");
  EXPECT_EQ(c.daemon.socket_group, "");
  EXPECT_EQ(c.daemon.metrics_listen, "");  // off by default
  EXPECT_EQ(c.daemon.metrics_top_n, 20u);
  EXPECT_EQ(c.daemon.pin_dir, "/sys/fs/bpf/faultprobe");
  EXPECT_EQ(c.daemon.lock_path, "/run/faultprobe/faultprobed.lock");
  EXPECT_EQ(c.daemon.max_procs, 0u);  // sized from the machine
  // An empty file is the defaults.
  Config e = parsed("");
  EXPECT_TRUE(e.policies.empty());
  EXPECT_EQ(e.daemon.socket_path, c.daemon.socket_path);
}

// ---- ladder steps ----

TEST(LadderStep, Accepted) {
  EXPECT_EQ(step("restart").type, ActionType::Restart);
  EXPECT_EQ(step("restore").type, ActionType::Restore);
  EXPECT_EQ(step("kill").type, ActionType::Kill);
  LadderStep t = step("throttle:cpu=20%");
  EXPECT_EQ(t.type, ActionType::Throttle);
  EXPECT_EQ(t.limits.cpu_share, 0.2);
  EXPECT_FALSE(t.limits.memory_bytes || t.limits.io_bps || t.limits.pids);
  EXPECT_EQ(step("throttle:cpu=1%").limits.cpu_share, 0.01);
  EXPECT_EQ(step("throttle:cpu=6400%").limits.cpu_share, 64.0);
  EXPECT_EQ(step("throttle:cpu=12.5%").limits.cpu_share, 0.125);
  EXPECT_EQ(step("throttle:memory=256M").limits.memory_bytes, 256ull << 20);
  EXPECT_EQ(step("throttle:memory=4096").limits.memory_bytes, 4096u);
  EXPECT_EQ(step("throttle:memory=64k").limits.memory_bytes, 64u << 10);
  EXPECT_EQ(step("throttle:memory=1G").limits.memory_bytes, 1ull << 30);
  EXPECT_EQ(step("throttle:memory=2T").limits.memory_bytes, 2ull << 40);
  EXPECT_EQ(step("throttle:io=10M").limits.io_bps, 10ull << 20);
  EXPECT_EQ(step("throttle:pids=64").limits.pids, 64u);
  LadderStep all = step("throttle:cpu=20%,memory=1G,io=5M,pids=32");
  EXPECT_EQ(all.limits.cpu_share, 0.2);
  EXPECT_EQ(all.limits.memory_bytes, 1ull << 30);
  EXPECT_EQ(all.limits.io_bps, 5ull << 20);
  EXPECT_EQ(all.limits.pids, 32u);
  EXPECT_EQ(all.text, "throttle:cpu=20%,memory=1G,io=5M,pids=32");
}

TEST(LadderStep, Rejected) {
  const std::string help =
      "expected \"throttle:LIMITS\", \"restart\", \"restore\" or \"kill\"; LIMITS are cpu=20% (percent of one CPU, "
      "1%..6400%), memory=256M (bytes, K/M/G/T suffixes), io=10M (bytes/s), pids=64, several joined with \",\" as "
      "in \"throttle:cpu=20%,memory=1G\"";
  EXPECT_EQ(step_error("reboot"), "unknown ladder step \"reboot\"; " + help);
  EXPECT_EQ(step_error("Restart"), "unknown ladder step \"Restart\"; " + help);
  EXPECT_EQ(step_error(""), "unknown ladder step \"\"; " + help);
  EXPECT_EQ(step_error("throttle"), "\"throttle\" needs limits in \"throttle\"; " + help);
  EXPECT_EQ(step_error("throttle:"), "\"throttle\" needs limits in \"throttle:\"; " + help);
  EXPECT_EQ(step_error("throttle:cpu"), "malformed throttle limit \"cpu\" in \"throttle:cpu\"; " + help);
  EXPECT_EQ(step_error("throttle:cpu=20%,"), "malformed throttle limit \"\" in \"throttle:cpu=20%,\"; " + help);
  const std::string cpu = "; expected cpu=PERCENT of one CPU from 1% to 6400% (\"cpu=20%\", \"cpu=150%\")";
  EXPECT_EQ(step_error("throttle:cpu=20"), "bad throttle limit \"cpu=20\" in \"throttle:cpu=20\"" + cpu);
  EXPECT_EQ(step_error("throttle:cpu=0.5%"), "bad throttle limit \"cpu=0.5%\" in \"throttle:cpu=0.5%\"" + cpu);
  EXPECT_EQ(step_error("throttle:cpu=6500%"), "bad throttle limit \"cpu=6500%\" in \"throttle:cpu=6500%\"" + cpu);
  EXPECT_EQ(step_error("throttle:cpu=-5%"), "bad throttle limit \"cpu=-5%\" in \"throttle:cpu=-5%\"" + cpu);
  EXPECT_EQ(step_error("throttle:memory=lots"),
            "bad throttle limit \"memory=lots\" in \"throttle:memory=lots\"; expected memory=SIZE, a whole number of "
            "bytes above 0 with an optional K, M, G or T suffix (\"memory=256M\")");
  EXPECT_EQ(step_error("throttle:memory=0"),
            "bad throttle limit \"memory=0\" in \"throttle:memory=0\"; expected memory=SIZE, a whole number of "
            "bytes above 0 with an optional K, M, G or T suffix (\"memory=256M\")");
  EXPECT_FALSE(parse_ladder_step("throttle:memory=256MB").ok());
  EXPECT_FALSE(parse_ladder_step("throttle:memory=99999999999T").ok());  // overflows 64 bits
  EXPECT_EQ(step_error("throttle:io=fast"),
            "bad throttle limit \"io=fast\" in \"throttle:io=fast\"; expected io=SIZE, a whole number of bytes per "
            "second above 0 with an optional K, M, G or T suffix (\"io=10M\")");
  EXPECT_EQ(step_error("throttle:pids=0"),
            "bad throttle limit \"pids=0\" in \"throttle:pids=0\"; expected pids=N, a whole number of processes "
            "from 1 (\"pids=64\")");
  EXPECT_EQ(step_error("throttle:disk=1M"),
            "unknown throttle limit \"disk\" in \"throttle:disk=1M\"; expected cpu, memory, io or pids "
            "(\"throttle:cpu=20%,memory=1G\")");
  EXPECT_EQ(step_error("throttle:cpu=20%,cpu=30%"),
            "throttle limit \"cpu\" is given twice in \"throttle:cpu=20%,cpu=30%\"");
}

TEST(NetAddress, ParsesAndRejects) {
  auto a = parse_net_address("127.0.0.1:9464", false);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->scheme, "");
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  auto b = parse_net_address("udp://[::1]:514", true);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->scheme, "udp");
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 514);
  EXPECT_EQ(parse_net_address("tcp://loghost:6514", true)->host, "loghost");
  EXPECT_EQ(parse_net_address("localhost:0", false).error().message,
            "bad address \"localhost:0\": the port must be a number from 1 to 65535; expected \"HOST:PORT\" "
            "(\"127.0.0.1:9464\", \"[::1]:9464\")");
  EXPECT_FALSE(parse_net_address("localhost:65536", false).ok());
  EXPECT_FALSE(parse_net_address("localhost", false).ok());
  EXPECT_FALSE(parse_net_address(":9464", false).ok());
  EXPECT_FALSE(parse_net_address("::1:9464", false).ok());
  EXPECT_FALSE(parse_net_address("[::1:9464", false).ok());
  EXPECT_FALSE(parse_net_address("a b:1", false).ok());
  EXPECT_EQ(parse_net_address("http://loghost:514", true).error().message,
            "bad address \"http://loghost:514\": unknown or missing scheme; expected \"udp://HOST:PORT\" or "
            "\"tcp://HOST:PORT\" (\"udp://loghost:514\")");
  EXPECT_FALSE(parse_net_address("loghost:514", true).ok());
}

// ---- errors, each with its position ----

TEST(PolicyConfigErrors, Policy) {
  EXPECT_EQ(error_of("[[policy]]\nmatch = { comm = \"x\" }\n"),
            "t.toml:1:1: [[policy]] #1 needs a \"name\" (a unique name for the policy)");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\n[[policy]]\nname = \"a\"\nmatch = { comm = "
                     "\"y\" }\n"),
            "t.toml:5:8: duplicate policy name \"a\" (first used at 2:8); policy names must be unique");
  EXPECT_EQ(error_of("[[policy]]\nname = 7\nmatch = { comm = \"x\" }\n"),
            "t.toml:2:8: \"name\" must be a string (got 7)");
  EXPECT_EQ(error_of("[[policy]]\nname = \"\"\nmatch = { comm = \"x\" }\n"), "t.toml:2:8: \"name\" must not be empty");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\non.crash = [\"restart\"]\n"),
            "t.toml:1:1: [[policy]] \"a\" needs a \"match\" such as { comm = \"batch-worker\" } (keys: comm, exe, "
            "cgroup, unit, uid, service)");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = {}\n"),
            "t.toml:3:9: \"match\" of [[policy]] \"a\" must name at least one of comm, exe, cgroup, unit, uid, service: an "
            "empty match would let the policy act on every process");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = { servce = \"x\" }\n"),
            "t.toml:3:11: unknown key \"servce\" in the match of [[policy]] \"a\"; expected one of: comm, exe, "
            "cgroup, unit, uid, service");
  // A rule's detectors do not know which [[service]] runs a process.
  EXPECT_NE(error_of("[[rule]]\nname = \"x\"\nclass = \"crash\"\nmatch = { service = \"web\" }\n")
                .find("\"service\" can only select the processes of a [[policy]]"),
            std::string::npos);
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = { uid = \"root\" }\n"),
            "t.toml:3:17: \"uid\" must be a non-negative integer (a numeric user id) (got \"root\")");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = \"x\"\n"),
            "t.toml:3:9: \"match\" must be a table such as { comm = \"nginx*\", uid = 1000 } (got \"x\")");
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\nretries = 3\n"),
            "t.toml:4:1: unknown key \"retries\" in [[policy]] \"a\"; expected one of: name, match, on, cooldown, "
            "recovery_window, budget, dry_run, user_units");
  EXPECT_EQ(error_of("[policy]\nname = \"a\"\n"),
            "t.toml:1:1: \"policy\" must be an array of tables: write [[policy]], one per policy");
  EXPECT_EQ(error_of("policy = 3\n"),
            "t.toml:1:10: \"policy\" must be an array of tables, one [[policy]] per policy (got 3)");
}

TEST(PolicyConfigErrors, PolicyValues) {
  const std::string head = "[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\n";
  EXPECT_EQ(error_of(head + "cooldown = 30\n"),
            "t.toml:4:12: \"cooldown\" must be a duration such as \"500ms\" or \"10s\" (got 30)");
  EXPECT_EQ(error_of(head + "recovery_window = \"0s\"\n"),
            "t.toml:4:19: \"recovery_window\" must be longer than 0s (got \"0s\")");
  EXPECT_EQ(error_of(head + "budget = 0\n"),
            "t.toml:4:10: \"budget\" must be at least 1, the number of actions allowed on one process per hour "
            "(got 0)");
  EXPECT_EQ(error_of(head + "budget = -1\n"),
            "t.toml:4:10: \"budget\" must not be negative; expected an integer from 1, the number of actions allowed "
            "on one process per hour (got -1)");
  EXPECT_EQ(error_of(head + "dry_run = \"yes\"\n"),
            "t.toml:4:11: \"dry_run\" must be true or false (got \"yes\")");
}

TEST(PolicyConfigErrors, Ladders) {
  const std::string head = "[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\n";
  std::string classes =
      "cpu_runaway, runq_starvation, memory_leak, memory_pressure, oom_kill, io_storm, io_latency, io_error, crash, "
      "crash_loop, hang, fork_bomb, anomaly, host_pressure, app_errors, net_retransmits, net_connect_failures, net_drops, "
      "kernel_error, hw_mce, "
      "hw_memory_error, hw_pcie_error, hw_disk_error, "
      "hw_thermal, "
      "hw_voltage";
  EXPECT_EQ(error_of(head + "on.cpu_runway = [\"restart\"]\n"),
            "t.toml:4:4: unknown fault class \"cpu_runway\" in on.cpu_runway of [[policy]] \"a\"; expected one of: " +
                classes);
  EXPECT_EQ(error_of(head + "on.crash = \"restart\"\n"),
            "t.toml:4:12: \"on.crash\" must be an array of ladder steps such as [\"throttle:cpu=20%\", \"restart\"] "
            "(got \"restart\")");
  EXPECT_EQ(error_of(head + "on.crash = []\n"),
            "t.toml:4:12: \"on.crash\" must list at least one ladder step (leave it out to only alert)");
  EXPECT_EQ(error_of(head + "on.crash = [\"restart\", 3]\n"),
            "t.toml:4:24: ladder steps in on.crash of [[policy]] \"a\" must be strings such as \"restart\" (got 3)");
  EXPECT_EQ(error_of(head + "on.cpu_runaway = [\"throttle:cpu=20\"]\n"),
            "t.toml:4:19: bad throttle limit \"cpu=20\" in \"throttle:cpu=20\"; expected cpu=PERCENT of one CPU from "
            "1% to 6400% (\"cpu=20%\", \"cpu=150%\") (in on.cpu_runaway of [[policy]] \"a\")");
  EXPECT_EQ(error_of(head + "on = 1\n"),
            "t.toml:4:6: \"on\" must be a table of ladders such as on.cpu_runaway = [\"throttle:cpu=20%\", "
            "\"restart\"] (got 1)");
  // "restore" on a policy that matches no service is fine at parse time: the actuator decides.
  EXPECT_EQ(parsed(head + "on.cpu_runaway = [\"restore\", \"kill\"]\n").policies.size(), 1u);
}

TEST(PolicyConfigErrors, Service) {
  EXPECT_EQ(error_of("[[service]]\ncommand = [\"/bin/true\"]\n"),
            "t.toml:1:1: [[service]] #1 needs a \"name\" (a unique name for the service)");
  EXPECT_EQ(error_of("[[service]]\nname = \"a b\"\ncommand = [\"/bin/true\"]\n"),
            "t.toml:2:8: service name \"a b\" may only contain letters, digits, \"_\", \".\" and \"-\"");
  EXPECT_EQ(error_of("[[service]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n[[service]]\nname = \"a\"\n"
                     "command = [\"/bin/true\"]\n"),
            "t.toml:5:8: duplicate service name \"a\" (first used at 2:8); service names must be unique");
  EXPECT_EQ(error_of("[[service]]\nname = \"a\"\n"),
            "t.toml:1:1: [[service]] \"a\" needs a \"command\", the argv to start, such as [\"/usr/bin/python3\", "
            "\"/opt/app.py\"]");
  EXPECT_EQ(error_of("[[service]]\nname = \"a\"\ncommand = []\n"),
            "t.toml:3:11: \"command\" must be a non-empty array of strings, the argv, such as [\"/usr/bin/python3\", "
            "\"/opt/app.py\"] (got an array)");
  EXPECT_EQ(error_of("[[service]]\nname = \"a\"\ncommand = [\"python3\", \"x.py\"]\n"),
            "t.toml:3:12: \"command\"[0] must be an absolute path such as \"/usr/bin/python3\" (got \"python3\"): "
            "services are started without a PATH search");
  EXPECT_EQ(error_of("[[service]]\nname = \"a\"\ncommand = [\"/bin/x\", 1]\n"),
            "t.toml:3:22: \"command\" entries must be strings (got 1)");
  const std::string head = "[[service]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";
  EXPECT_EQ(error_of(head + "cwd = \"var/lib\"\n"),
            "t.toml:4:7: \"cwd\" must be an absolute path such as \"/var/lib/counter\" (got \"var/lib\")");
  EXPECT_EQ(error_of(head + "user = 0\n"),
            "t.toml:4:8: \"user\" must be a string such as \"nobody\" or \"1000\" (got 0)");
  EXPECT_EQ(error_of(head + "env = { A = 1 }\n"),
            "t.toml:4:13: environment variable \"A\" must be a string (got 1)");
  EXPECT_EQ(error_of(head + "env = [\"A=1\"]\n"),
            "t.toml:4:7: \"env\" must be a table of strings such as { LANG = \"C.UTF-8\" } (got an array)");
  EXPECT_EQ(error_of(head + "restart = \"sometimes\"\n"),
            "t.toml:4:11: \"restart\" must be \"no\", \"on-failure\" or \"always\" (got \"sometimes\")");
  EXPECT_EQ(error_of(head + "backoff_initial = \"0s\"\n"),
            "t.toml:4:19: \"backoff_initial\" must be longer than 0s (got \"0s\")");
  EXPECT_EQ(error_of(head + "backoff_initial = \"1m\"\n"),
            "t.toml:4:19: \"backoff_initial\" (1m) must not be above \"backoff_max\" (30s, the default) in "
            "[[service]] \"a\"");
  EXPECT_EQ(error_of(head + "backoff_initial = \"5s\"\nbackoff_max = \"1s\"\n"),
            "t.toml:5:15: \"backoff_initial\" (5s) must not be above \"backoff_max\" (1s) in [[service]] \"a\"");
  EXPECT_EQ(error_of(head + "crash_loop_limit = 0\n"),
            "t.toml:4:20: \"crash_loop_limit\" must be at least 1, the number of failed starts before the service "
            "stays down (got 0)");
  EXPECT_EQ(error_of(head + "unit = \"x.service\"\n"),
            "t.toml:4:1: unknown key \"unit\" in [[service]] \"a\"; expected one of: name, command, user, cwd, env, "
            "restart, stop_grace, backoff_initial, backoff_max, crash_loop_limit, crash_loop_window, checkpoint");
}

TEST(PolicyConfigErrors, Checkpoint) {
  const std::string head = "[[service]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n";
  EXPECT_EQ(error_of(head + "checkpoint = { dir = \"/x\" }\n"),
            "t.toml:4:14: the checkpoint of [[service]] \"a\" needs a \"backend\": \"app\" or \"criu\"");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"app\" }\n"),
            "t.toml:4:14: the checkpoint of [[service]] \"a\" needs a \"dir\", an absolute path where checkpoints "
            "are kept");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"zfs\", dir = \"/x\" }\n"),
            "t.toml:4:26: \"backend\" must be \"app\" or \"criu\" (got \"zfs\")");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"app\", dir = \"ckpt\" }\n"),
            "t.toml:4:39: \"dir\" must be an absolute path such as \"/var/lib/counter/ckpt\" (got \"ckpt\")");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"criu\", dir = \"/x\", every = \"0s\" }\n"),
            "t.toml:4:54: \"every\" must be longer than 0s (got \"0s\")");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"criu\", dir = \"/x\", keep = 0 }\n"),
            "t.toml:4:53: \"keep\" must be at least 1, the number of checkpoints kept (got 0)");
  EXPECT_EQ(error_of(head + "checkpoint = { backend = \"criu\", dir = \"/x\", period = \"1s\" }\n"),
            "t.toml:4:46: unknown key \"period\" in the checkpoint of [[service]] \"a\"; expected one of: backend, "
            "dir, every, keep");
  EXPECT_EQ(error_of(head + "checkpoint = \"/x\"\n"),
            "t.toml:4:14: \"checkpoint\" must be a table such as { backend = \"app\", dir = \"/var/lib/app/ckpt\" } "
            "(got \"/x\")");
}

TEST(PolicyConfigErrors, LimitsAndDaemon) {
  EXPECT_EQ(error_of("[limits]\nactions_per_minute = 0\n"),
            "t.toml:2:22: \"actions_per_minute\" must be at least 1, the number of actions allowed per minute (got "
            "0)");
  EXPECT_EQ(error_of("[limits]\nper_minute = 3\n"),
            "t.toml:2:1: unknown key \"per_minute\" in [limits]; expected one of: actions_per_minute");
  EXPECT_EQ(error_of("limits = 3\n"), "t.toml:1:10: \"limits\" must be a table: write [limits] (got 3)");
  EXPECT_EQ(error_of("[daemon]\nsyslog = 1\n"), "t.toml:2:10: \"syslog\" must be true or false (got 1)");
  EXPECT_EQ(error_of("[daemon]\nsyslog_forward = \"loghost:514\"\n"),
            "t.toml:2:18: \"syslog_forward\": bad address \"loghost:514\": unknown or missing scheme; expected "
            "\"udp://HOST:PORT\" or \"tcp://HOST:PORT\" (\"udp://loghost:514\") (or \"\" for none)");
  EXPECT_EQ(error_of("[daemon]\nmetrics_listen = \"localhost:99999\"\n"),
            "t.toml:2:18: \"metrics_listen\": bad address \"localhost:99999\": the port must be a number from 1 to "
            "65535; expected \"HOST:PORT\" (\"127.0.0.1:9464\", \"[::1]:9464\") (or \"\" for off)");
  EXPECT_EQ(error_of("metrics_listen = 9464\n"),
            "t.toml:1:18: \"metrics_listen\" must be a string such as \"127.0.0.1:9464\" (\"\" = off) (got 9464)");
  EXPECT_EQ(error_of("metrics_listen = \"127.0.0.1:9464\"\n[daemon]\nmetrics_listen = \"127.0.0.1:9465\"\n"),
            "t.toml:3:18: \"metrics_listen\" is set twice: at the top level and in [daemon] (first at 1:18); keep "
            "one");
  EXPECT_EQ(error_of("[daemon]\nsocket = \"fp.sock\"\n"),
            "t.toml:2:10: \"socket\" must be an absolute path such as \"/run/faultprobe/faultprobe.sock\" (\"\" = no "
            "socket) (got "
            "\"fp.sock\")");
  EXPECT_EQ(error_of("[daemon]\nsyslog_per = \"0s\"\n"),
            "t.toml:2:14: \"syslog_per\" must be longer than 0s (got \"0s\")");
  EXPECT_EQ(error_of("[daemon]\nmetrics_top_n = -2\n"),
            "t.toml:2:17: \"metrics_top_n\" must not be negative; expected an integer from 0, the number of "
            "per-process series per resource (got -2)");
  EXPECT_EQ(error_of("[daemon]\npid_file = \"/run/x\"\n"),
            "t.toml:2:1: unknown key \"pid_file\" in [daemon]; expected one of: syslog, syslog_forward, syslog_burst, "
            "syslog_per, socket, socket_group, metrics_listen, metrics_top_n, pin_dir, lock_path, state_dir, log_dir, "
            "max_procs, throttle_backend");
  EXPECT_EQ(error_of("[daemon]\nthrottle_backend = \"freezer\"\n"),
            "t.toml:2:20: \"throttle_backend\" must be \"auto\" or \"signal\" (got \"freezer\")");
}

TEST(PolicyConfigErrors, TheEarliestMistakeIsReported) {
  // [daemon] is visited before [[policy]] (name order); the policy's mistake comes first in the file.
  EXPECT_EQ(error_of("[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\nbudget = 0\n[daemon]\nsyslog = 1\n"),
            "t.toml:4:10: \"budget\" must be at least 1, the number of actions allowed on one process per hour "
            "(got 0)");
  EXPECT_EQ(error_of("[daemon]\nsyslog = 1\n[[policy]]\nname = \"a\"\nmatch = { comm = \"x\" }\nbudget = 0\n"),
            "t.toml:2:10: \"syslog\" must be true or false (got 1)");
}

}  // namespace
}  // namespace fp
