// Hostile input against the real daemon (issue 15). Processes named with
// invalid UTF-8, newlines, escape sequences, quotes, '=' and names of 15 and
// more bytes, some carrying 1 MiB command lines, crash, leak and hang: each
// is reported under its escaped name (which reads back to the bytes), the
// next ordinary fault still is, the tick counter goes on, syslog has one line
// per record, the daemon's own log one line per message, and the CLI on a
// terminal prints no control byte. Item 8: a process named like a protected
// one is blamed, the real one is not.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "../time_scale.h"
#include "e2e_fixture.h"
#include "services.h"
#include "alert/syslog_format.h"
#include "util/text.h"

using namespace std::chrono_literals;
using namespace fp::e2e;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kRules = R"(
sample_interval = "100ms"
[rules.anomaly]
enabled = false
[rules.crash]
clear = "1s"
[rules.memory_leak]
window = "4s"
threshold = 5.0
clear = "2s"
[rules.hang]
threshold = 1
)";
// Every alert line reaches syslog (a rate limit far above what the test
// makes): the test counts them.
const std::string kNoSyslogLimit = "syslog_burst = 100000";

// What a process can call itself, as bytes.
const std::vector<std::string> kNames = {
    "x\xff\xfey",                // invalid UTF-8 (the issue's report)
    "nl\n<13>fake line",         // a newline, and what would forge a log line after it
    "\x1b[2J\x1b]0;pwned\x07",   // ESC sequences: clear the screen, set the title; BEL
    "q\"uo'te\\",                // quotes and a backslash
    "k=v class=ok]",             // key=value and RFC 5424's ']'
    "exactly15bytes!",           // kept whole
    "longer-than-15-bytes",      // cut to 15 by the kernel
    "\\xff-literal",             // text that spells our own escape
    "caf\xc3\xa9\xe2\x80\xae!",  // valid UTF-8, and a right-to-left override
};

// The name as the kernel keeps it (15 bytes), as the daemon writes it.
std::string reported(const std::string& name) { return fp::escape_text(name.substr(0, 15)); }

// Valid UTF-8 with no control byte (newlines allowed if asked).
bool clean(const std::string& s, bool newlines) { return !fp::needs_display_escape(s, newlines); }

std::string python3() { return fs::canonical("/usr/bin/python3").string(); }

// A copy of `program` in `dir` under `name`, mode 0755.
std::string copy_as(const std::string& program, const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  fs::copy_file(program, path, fs::copy_options::overwrite_existing);
  fs::permissions(path, fs::perms(0755));
  return path;
}

// Python that prints faultgen's first line, then does `body`.
std::string py(const std::string& body) {
  return "import json, os, sys, time\n"
         "print(json.dumps({'culprit': os.getpid()}), flush=True)\n" +
         body;
}
const std::string kCrash = "time.sleep(0.3)\nos.abort()\n";
const std::string kLeak = "a = []\nwhile True:\n    a.append(b'x' * (4 << 20))\n    time.sleep(0.1)\n";

// Python that names its own process `name` (prctl PR_SET_NAME), any bytes.
std::string renamed(const std::string& name) {
  std::string hex;
  char buf[3];
  for (unsigned char c : name) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    hex += buf;
  }
  return "import ctypes\nctypes.CDLL(None).prctl(15, bytes.fromhex('" + hex + "'), 0, 0, 0)\n";
}

// 16 arguments of 64 KiB: a 1 MiB command line (one argument may not pass 128 KiB).
std::vector<std::string> mib_of_args() { return std::vector<std::string>(16, std::string(64 << 10, 'A')); }

uint64_t ticks(const Daemon& d) {
  auto r = d.query({{"cmd", "status"}});
  if (!r.is_object() || !r.contains("status")) return 0;
  return r["status"]["sampling"].value("ticks", uint64_t{0});
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Lines of `text` (from `from`) that contain `needle`.
size_t count_lines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (const auto& l : lines_of(text)) n += l.find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST(Hostile, NamesAreReportedAndTheDaemonGoesOn) {
  const std::string syslog = "/var/log/syslog";
  ASSERT_EQ(system("pgrep -x rsyslogd >/dev/null"), 0) << "rsyslogd is not running (scripts/start-services)";
  const size_t syslog_from = file_offset(syslog);
  Daemon d(kRules, {}, kNoSyslogLimit);
  ASSERT_TRUE(d.ready());
  const std::string bin = d.dir() + "/bin";
  fs::create_directories(bin);
  const uint64_t ticks_before = ticks(d);
  ASSERT_GT(ticks_before, 0u);

  // Crashes: a copy of python3 under each name (the name is the file's, as in
  // the issue's report), every other one with a 1 MiB command line.
  std::map<uint32_t, std::string> crashed;  // pid -> name
  for (size_t i = 0; i < kNames.size(); ++i) {
    std::vector<std::string> args = {"-c", py(kCrash)};
    if (i % 2 == 0)
      for (auto& a : mib_of_args()) args.push_back(a);
    FaultGen g(copy_as(python3(), bin, kNames[i]), args);
    ASSERT_TRUE(g.started()) << i;
    auto f = d.wait_fault("crash", g.culprit(), 10s);
    ASSERT_TRUE(f) << "name #" << i << "\n" << describe(d.records()) << d.log();
    EXPECT_EQ((*f)["comm"], reported(kNames[i])) << f->dump();
    EXPECT_EQ(fp::unescape_text((*f)["comm"].get<std::string>()), kNames[i].substr(0, 15));
    crashed[g.culprit()] = kNames[i];
    g.wait();
  }

  // Leaks (a 1 MiB command line too) and hangs, several names at once.
  std::vector<std::unique_ptr<FaultGen>> leaks, hangs;
  for (size_t i : {0, 1, 2}) {
    std::vector<std::string> args = {"-c", py(kLeak)};
    for (auto& a : mib_of_args()) args.push_back(a);
    leaks.push_back(std::make_unique<FaultGen>(copy_as(python3(), bin, kNames[i] + "-leak"), args));
    // A copy of faultgen under the name: the probe learns a name at exec
    // (a prctl rename it sees at exit only).
    hangs.push_back(std::make_unique<FaultGen>(copy_as(FP_FAULTGEN_BIN, bin, kNames[i + 3]),
                                               std::vector<std::string>{"hang", "--dstate", "4s", "--duration", "4s"}));
  }
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(leaks[i]->started() && hangs[i]->started());
    auto leak = d.wait_fault("memory_leak", leaks[i]->culprit(), 15s);
    ASSERT_TRUE(leak) << describe(d.records());
    EXPECT_EQ((*leak)["comm"], reported(kNames[i] + "-leak"));
    auto hang = d.wait_fault("hang", hangs[i]->culprit(), 10s);
    ASSERT_TRUE(hang) << describe(d.records());
    EXPECT_EQ((*hang)["comm"], reported(kNames[i + 3]));
  }
  leaks.clear();
  hangs.clear();

  // The next ordinary fault: reported, and the loop kept ticking throughout.
  FaultGen ordinary({"crash", "--signal", "SEGV", "--after", "200ms", "--duration", "1s"});
  ASSERT_TRUE(ordinary.started());
  ASSERT_TRUE(d.wait_fault("crash", ordinary.culprit(), 10s)) << describe(d.records());
  EXPECT_GT(ticks(d), ticks_before);
  auto status = d.query({{"cmd", "status"}});
  ASSERT_TRUE(status.contains("status")) << status.dump();
  EXPECT_EQ(status["status"]["limits"]["records_failed"], 0) << status["status"]["limits"].dump();
  EXPECT_EQ(status["status"]["limits"]["ticks_failed"], 0);
  // The 1 MiB command lines were never kept: the daemon reads none.
  EXPECT_LE(status["status"]["limits"]["procinfo_cache"]["bytes"].get<uint64_t>(),
            status["status"]["limits"]["procinfo_cache"]["max_bytes"].get<uint64_t>());

  // Every event line parses (the fixture fails the test on one that does
  // not) and is clean text.
  for (const auto& r : d.records()) EXPECT_TRUE(clean(r.dump(), false)) << r.dump();

  // Syslog: one line per record, and nothing a name could forge.
  std::string sys;
  ASSERT_TRUE(wait_for(
      [&] {
        sys = slurp(syslog).substr(std::min(syslog_from, slurp(syslog).size()));
        for (const auto& [pid, name] : crashed)
          if (count_lines(sys, " pid=" + std::to_string(pid) + " ") == 0) return false;
        return true;
      },
      10s))
      << sys;
  for (const auto& [pid, name] : crashed) {
    size_t records = 0;
    for (const auto& r : d.records())
      if (r.value("pid", 0u) == pid && (r["kind"] == "fault" || r["kind"] == "resolved")) records++;
    // A resolve may land between the two reads: syslog may be one behind.
    size_t lines = count_lines(sys, " pid=" + std::to_string(pid) + " ");
    EXPECT_TRUE(lines == records || lines + 1 == records) << pid << ": " << lines << " lines, " << records << " records";
    EXPECT_GE(count_lines(sys, "comm=" + fp::kv_value(reported(name))), 1u) << name;
  }
  for (const auto& l : lines_of(sys)) {
    EXPECT_TRUE(clean(l, false)) << l;
    EXPECT_NE(l.rfind("<13>fake line", 0), 0u) << l;
  }

  // The daemon's own log: one line per message, each with its timestamp.
  const std::regex stamp(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} )");
  for (const auto& l : lines_of(d.log())) {
    EXPECT_TRUE(std::regex_search(l, stamp)) << "a log line without a timestamp: " << l;
    EXPECT_TRUE(clean(l, false)) << l;
  }
  EXPECT_EQ(d.log().find("failed, continuing"), std::string::npos) << d.log();

  // A clean stop (no std::terminate on the way out), and the state file is root's only.
  EXPECT_EQ(d.stop(), 0) << d.log();
  struct stat st {};
  ASSERT_EQ(stat((d.dir() + "/state/open-faults.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((d.dir() + "/faultprobed.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// `faultprobe events`, `status` and `top -b` on a terminal (tmux): records of
// processes named with escape sequences and newlines come out as text, and
// no byte of the output is a control byte but the line ends.
TEST(Hostile, TheCliOnATerminalPrintsNoControlByte) {
  ASSERT_EQ(system("command -v tmux >/dev/null"), 0) << "tmux is not installed (scripts/install-deps)";
  Daemon d(kRules);
  ASSERT_TRUE(d.ready());
  const std::string bin = d.dir() + "/bin";
  fs::create_directories(bin);
  for (const std::string& name : {kNames[1], kNames[2], kNames[0]}) {
    FaultGen g(copy_as(python3(), bin, name), {"-c", py(kCrash)});
    ASSERT_TRUE(g.started());
    ASSERT_TRUE(d.wait_fault("crash", g.culprit(), 10s)) << describe(d.records());
    g.wait();
  }
  const std::string out = d.dir() + "/tty.out", script = d.dir() + "/cli.sh";
  const std::string fp_cli = std::string(FP_FAULTPROBE_BIN) + " ";
  const std::string sock = " --socket " + d.socket_path();
  std::ofstream(script) << "read x\n"
                        << fp_cli << "events --backlog 100" << sock << "\n"
                        << fp_cli << "status" << sock << "\n"
                        << fp_cli << "top --daemon -b -n 1 --rows 400" << sock << "\n"
                        << "echo __end__\nsleep 60\n";
  const std::string session = "fp_hostile_" + std::to_string(getpid());
  ASSERT_EQ(system(("tmux new-session -d -s " + session + " -x 220 -y 50 'sh " + script + "'").c_str()), 0);
  // Captured from the start: the script waits for a key until the pipe is on.
  ASSERT_EQ(system(("tmux pipe-pane -o -t " + session + " 'cat >> " + out + "'").c_str()), 0);
  ASSERT_EQ(system(("tmux send-keys -t " + session + " Enter").c_str()), 0);
  bool done = wait_for([&] { return slurp(out).find("__end__") != std::string::npos; }, 30s);
  std::string bytes = slurp(out);
  (void)system(("tmux kill-session -t " + session).c_str());
  ASSERT_TRUE(done) << bytes;
  for (size_t i = 0; i < bytes.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    ASSERT_FALSE((c < 0x20 && c != '\r' && c != '\n') || c == 0x7f)
        << "control byte " << int(c) << " at " << i << ": ..." << bytes.substr(i > 60 ? i - 60 : 0, 120);
  }
  // The terminal's line ends are "\r\n" (the tty's onlcr): the carriage
  // returns were checked above.
  std::string text = bytes;
  std::erase(text, '\r');
  EXPECT_TRUE(clean(text, true)) << "not UTF-8, or a bidi/C1 code point";
  // The names are there, as text.
  EXPECT_NE(bytes.find(reported(kNames[2]).substr(0, 15)), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("x\\xff\\xfey"), std::string::npos) << bytes;
}

// Item 8: a name is not enough to be protected. The real python (its own
// executable, root's, in a root-owned directory) is protected by its name; a
// copy under another name that renames itself to it (prctl), a copy under
// that very name owned by an unprivileged user who runs it, and a program
// started with `exec -a NAME` (argv[0] only) are blamed like any other.
TEST(Hostile, ANameLikeAProtectedOneIsNotProtected) {
  const std::string real = python3();
  const std::string name = fs::path(real).filename().string();  // python3.11
  ASSERT_LE(name.size(), 15u);
  Daemon d("protected_comms = [\"" + name + "\"]\n" + kRules);
  ASSERT_TRUE(d.ready());
  // A directory the unprivileged user can reach, and a file of its own there.
  const std::string pub = temp_dir();
  fs::permissions(pub, fs::perms(0755));
  const passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  const std::string leak_py = pub + "/leak.py";
  std::ofstream(leak_py) << py(kLeak);
  const std::string user_copy = copy_as(real, pub, name);
  ASSERT_EQ(chown(user_copy.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  const std::string bin = d.dir() + "/bin";
  fs::create_directories(bin);
  const std::string leaker = copy_as(real, bin, "leaker");

  FaultGen genuine(real, {leak_py});
  FaultGen prctl_renamed(leaker, {"-c", renamed(name) + py(kLeak)});
  FaultGen user_owned("/usr/bin/setpriv", {"--reuid=nobody", "--regid=nogroup", "--clear-groups", user_copy, leak_py});
  FaultGen exec_a("/bin/bash", {"-c", "exec -a " + name + " " + leaker + " " + leak_py});
  for (FaultGen* g : {&genuine, &prctl_renamed, &user_owned, &exec_a}) ASSERT_TRUE(g->started());

  // The probe learns a name at exec (and at exit): the prctl rename is seen
  // by the handling stage (/proc), and the fault is reported either way.
  auto f = d.wait_fault("memory_leak", prctl_renamed.culprit(), 15s);
  ASSERT_TRUE(f) << describe(d.records());
  if ((*f)["comm"] == name) {
    EXPECT_NE((*f)["evidence"].value("not_protected", "").find("is not that program"), std::string::npos) << f->dump();
  }
  f = d.wait_fault("memory_leak", user_owned.culprit(), 10s);
  ASSERT_TRUE(f) << describe(d.records());
  EXPECT_EQ((*f)["comm"], name);
  EXPECT_NE((*f)["evidence"].value("not_protected", "").find("root-owned"), std::string::npos) << f->dump();
  ASSERT_TRUE(d.wait_fault("memory_leak", exec_a.culprit(), 10s)) << describe(d.records());
  // The genuine one leaked as long and as fast: never blamed.
  for (const auto& r : d.records()) EXPECT_NE(r.value("pid", 0u), genuine.culprit()) << r.dump();
  for (FaultGen* g : {&genuine, &prctl_renamed, &user_owned, &exec_a}) g->stop();
  fs::remove_all(pub);
}
