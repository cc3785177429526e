// app_errors ([[logwatch]]): the section and its mistakes (each leaves only
// its own rule out), the file follower on a real file in a temp dir (start at
// the end, partial lines, rotation by rename and by truncation, a symlink or
// a FIFO in the file's place, a line longer than the cut), the set's pid
// group, and the detector charging lines to their writer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "detect/journal.h"
#include "detect/logwatch.h"
#include "threshold_rules.h"

namespace fp {
namespace {

using namespace std::chrono_literals;
using namespace sim;

const RuleConfig* find_rule(const Config& c, const std::string& name) {
  for (const RuleConfig& r : c.rules)
    if (r.name == name) return &r;
  return nullptr;
}

TEST(LogwatchConfig, ASectionIsAnAppErrorsRule) {
  auto c = parse_config(R"(
[[logwatch]]
name = "api"
path = "/var/log/api/app.log"
pattern = "ERROR|Traceback"
threshold = 20
window = "30s"
for = "2s"
match = { comm = "api-server" }
)",
                        "t.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->left_out.empty());
  const RuleConfig* r = find_rule(*c, "api");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->cls, FaultClass::AppErrors);
  EXPECT_TRUE(r->enabled);
  EXPECT_EQ(r->logwatch.path, "/var/log/api/app.log");
  EXPECT_EQ(r->logwatch.pattern, "ERROR|Traceback");
  EXPECT_EQ(r->threshold, 20);
  EXPECT_EQ(r->window, 30s);
  EXPECT_EQ(r->hold, 2s);
  EXPECT_EQ(r->match.comm, "api-server");
  // The built-in app_errors rule has no file: it is there, and off.
  const RuleConfig* builtin = find_rule(*c, "app_errors");
  ASSERT_NE(builtin, nullptr);
  EXPECT_FALSE(builtin->enabled);
}

// One bad section is left out with a message naming its key; the good one
// and the rest of the file stay.
TEST(LogwatchConfig, AMistakeLeavesOnlyThatSectionOut) {
  auto c = parse_config(R"(
sample_interval = "200ms"

[[logwatch]]
name = "bad"
path = "/var/log/a.log"
pattern = "ERROR("

[[logwatch]]
name = "good"
path = "/var/log/b.log"
pattern = "FATAL"
)",
                        "t.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->sample_interval, 200ms);
  ASSERT_EQ(c->left_out.size(), 1u);
  EXPECT_NE(c->left_out[0].find("t.toml:7:11: \"pattern\" of [[logwatch]] \"bad\" is not a valid RE2 pattern"),
            std::string::npos)
      << c->left_out[0];
  EXPECT_EQ(find_rule(*c, "bad"), nullptr);
  EXPECT_NE(find_rule(*c, "good"), nullptr);
}

TEST(LogwatchConfig, EveryMistakeIsNamed) {
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {"path = \"/l\"\npattern = \"x\"\n", "needs a \"name\""},
      {"name = \"n\"\npattern = \"x\"\n", "needs a \"path\""},
      {"name = \"n\"\npath = \"/l\"\n", "needs a \"pattern\""},
      {"name = \"n\"\npath = \"var/l\"\npattern = \"x\"\n", "\"path\" must be an absolute path"},
      {"name = \"n\"\npath = \"/a/../l\"\npattern = \"x\"\n", "no \"..\""},
      {"name = \"n\"\npath = \"/l\"\npattern = \"\"\n", "\"pattern\" of [[logwatch]] \"n\" must be 1 to"},
      {"name = \"n\"\npath = \"/l\"\npattern = \"(?P<who>x)\"\n", "names a group other than \"pid\""},
      {"name = \"crash\"\npath = \"/l\"\npattern = \"x\"\n", "is the name of a built-in rule"},
      {"name = \"n\"\npath = \"/l\"\npattern = \"x\"\nresource = \"cpu\"\n", "is a host_pressure rule's"},
      {"name = \"n\"\npath = \"/l\"\npattern = \"x\"\nclass = \"crash\"\n", "unknown key \"class\""},
      {"name = \"n\"\npath = \"/l\"\npattern = \"x\"\nthreshold = 5\nresolve = 9\n", "\"resolve\" (9) must not be above"},
  };
  for (const Case& k : cases) {
    auto c = parse_config(std::string("[[logwatch]]\n") + k.body, "t.toml");
    ASSERT_TRUE(c) << k.body << c.error().message;
    ASSERT_EQ(c->left_out.size(), 1u) << k.body;
    EXPECT_NE(c->left_out[0].find(k.says), std::string::npos) << k.body << " -> " << c->left_out[0];
  }
  // Not a section array: left out too, the rest read.
  auto table = parse_config("logwatch = 3\nsample_interval = \"50ms\"\n", "t.toml");
  ASSERT_TRUE(table);
  EXPECT_EQ(table->left_out.size(), 1u);
  EXPECT_EQ(table->sample_interval, 50ms);
  // app_errors is not written as a rule.
  auto over = parse_config("[rules.app_errors]\nthreshold = 3\n", "t.toml");
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message.find("written as [[logwatch]] sections"), std::string::npos);
  auto added = parse_config("[[rule]]\nname = \"x\"\nclass = \"app_errors\"\n", "t.toml");
  ASSERT_FALSE(added);
  EXPECT_NE(added.error().message.find("written as [[logwatch]] sections"), std::string::npos);
  // A logwatch may not take a [[rule]]'s name.
  auto clash = parse_config(
      "[[rule]]\nname = \"api\"\nclass = \"cpu_runaway\"\n[[logwatch]]\nname = \"api\"\npath = \"/l\"\npattern = \"x\"\n",
      "t.toml");
  ASSERT_TRUE(clash);
  ASSERT_EQ(clash->left_out.size(), 1u);
  EXPECT_NE(clash->left_out[0].find("has the name of a [[rule]]"), std::string::npos);
  EXPECT_EQ(find_rule(*clash, "api")->cls, FaultClass::CpuRunaway);
}

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/fp_logwatch_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void append(const std::string& name, const std::string& text) const {
    std::ofstream(path + "/" + name, std::ios::app) << text;
  }
  std::string path;
};

std::vector<std::string> read_lines(LogFollower& f) {
  std::vector<std::string> out;
  f.read(kReadBudget, [&](std::string_view l) { out.emplace_back(l); });
  return out;
}

using Lines = std::vector<std::string>;

TEST(LogFollower, StartsAtTheEndAndHoldsAPartialLine) {
  TempDir d;
  d.append("app.log", "old error 1\nold error 2\n");
  LogFollower f(d.path + "/app.log");
  EXPECT_TRUE(read_lines(f).empty());  // what was there before is history
  EXPECT_EQ(f.error(), "");
  d.append("app.log", "new 1\nnew ");
  EXPECT_EQ(read_lines(f), Lines{"new 1"});
  d.append("app.log", "2\n");
  EXPECT_EQ(read_lines(f), Lines{"new 2"});
  EXPECT_EQ(f.lines(), 2u);
}

TEST(LogFollower, FollowsARenameAndATruncation) {
  TempDir d;
  const std::string log = d.path + "/app.log";
  d.append("app.log", "");
  LogFollower f(log);
  read_lines(f);
  d.append("app.log", "before rotation\nlast line unterminated");
  std::filesystem::rename(log, log + ".1");
  d.append("app.log", "after rotation\n");
  // The old file to its end (its last line too), then the new one from its start.
  EXPECT_EQ(read_lines(f), (Lines{"before rotation", "last line unterminated", "after rotation"}));
  EXPECT_EQ(f.rotations(), 1u);
  // copytruncate: the same file, emptied and written again.
  ASSERT_EQ(::truncate(log.c_str(), 0), 0);
  d.append("app.log", "x\n");
  EXPECT_EQ(read_lines(f), Lines{"x"});
}

TEST(LogFollower, ASymlinkOrAFifoInTheFilesPlaceIsNotOpened) {
  TempDir d;
  const std::string log = d.path + "/app.log";
  d.append("secret", "root's secret ERROR\n");
  std::filesystem::create_symlink(d.path + "/secret", log);
  LogFollower f(log);
  EXPECT_TRUE(read_lines(f).empty());
  EXPECT_NE(f.error().find("symbolic link"), std::string::npos) << f.error();
  EXPECT_EQ(f.fd(), -1);
  std::filesystem::remove(log);
  ASSERT_EQ(::mkfifo(log.c_str(), 0600), 0);  // opening it for reading would block the tick
  EXPECT_TRUE(read_lines(f).empty());
  EXPECT_NE(f.error().find("not a regular file"), std::string::npos) << f.error();
  std::filesystem::remove(log);
  EXPECT_TRUE(read_lines(f).empty());
  EXPECT_NE(f.error().find("No such file"), std::string::npos) << f.error();
  // It appears: followed from then on (from its end: it is a new first open).
  d.append("app.log", "early\n");
  read_lines(f);
  EXPECT_EQ(f.error(), "");
  d.append("app.log", "late\n");
  EXPECT_EQ(read_lines(f), Lines{"late"});
}

TEST(LogFollower, ALongLineIsCutAndAFloodIsSkippedAndCounted) {
  TempDir d;
  d.append("app.log", "");
  LogFollower f(d.path + "/app.log");
  read_lines(f);
  d.append("app.log", std::string(10000, 'a') + "\nshort\n");
  Lines l = read_lines(f);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].size(), kMaxLineBytes);
  EXPECT_EQ(l[1], "short");
  // More than the backlog bound behind: skipped to the end, counted.
  d.append("app.log", std::string(kMaxBacklogBytes + 100, 'b') + "\nafter\n");
  Lines after = read_lines(f);
  EXPECT_GT(f.skipped_bytes(), kMaxBacklogBytes);
  EXPECT_TRUE(after.empty() || after.back().size() <= kMaxLineBytes);
}

RuleConfig watch_rule(const std::string& name, const std::string& path, const std::string& pattern) {
  RuleConfig r = rule(FaultClass::AppErrors, 5, 1, 10s);
  r.name = name;
  r.logwatch.path = path;
  r.logwatch.pattern = pattern;
  return r;
}

TEST(LogWatchSet, MatchesAndTakesThePidFromTheLine) {
  TempDir d;
  d.append("app.log", "");
  d.append("sys.log", "");
  LogWatchSet set;
  set.set_rules({watch_rule("plain", d.path + "/app.log", "ERROR"),
                 watch_rule("bypid", d.path + "/sys.log", R"(api\[(?P<pid>[0-9]+)\]: ERROR)")});
  set.read();
  d.append("app.log", "INFO fine\nERROR one\nan ERROR two\n");
  d.append("sys.log", "api[4242]: ERROR boom\napi[x]: ERROR no pid\nother[1]: INFO\n");
  set.read();
  const auto& plain = set.matches("plain");
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_EQ(plain[0].line, "ERROR one");
  const auto& bypid = set.matches("bypid");
  ASSERT_EQ(bypid.size(), 1u);
  EXPECT_EQ(bypid[0].pid, 4242u);
  EXPECT_EQ(bypid[0].by, LogMatch::By::Line);
  auto st = set.status();
  EXPECT_EQ(st["plain"]["matched"], 2);
  EXPECT_EQ(st["bypid"]["writers_from"], "line");
  set.read();
  EXPECT_TRUE(set.matches("plain").empty());  // this tick's only
  // A reload that keeps the rule keeps its place in the file.
  d.append("app.log", "ERROR three\n");
  set.set_rules({watch_rule("plain", d.path + "/app.log", "ERROR")});
  set.read();
  EXPECT_EQ(set.matches("plain").size(), 1u);
  EXPECT_TRUE(set.matches("bypid").empty());
}

// ---- the journal ----

TEST(LogwatchConfig, TheJournalAsSource) {
  auto c = parse_config(R"(
[[logwatch]]
name = "api"
journal = true
unit = "api.service"
pattern = "ERROR"

[[logwatch]]
name = "remote"
journal = "/var/log/journal/remote"
pattern = "FATAL"
)",
                        "t.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->left_out.empty()) << c->left_out[0];
  const RuleConfig* api = find_rule(*c, "api");
  ASSERT_NE(api, nullptr);
  EXPECT_TRUE(api->logwatch.journal);
  EXPECT_EQ(api->logwatch.journal_dir, "");
  EXPECT_EQ(api->logwatch.unit, "api.service");
  EXPECT_EQ(find_rule(*c, "remote")->logwatch.journal_dir, "/var/log/journal/remote");
  struct Case {
    const char* body;
    const char* says;
  } cases[] = {
      {"journal = true\npath = \"/l\"\n", "either a file (\"path\") or the journal"},
      {"journal = \"rel/dir\"\n", "\"journal\" of [[logwatch]] \"n\" must be true"},
      {"journal = false\nunit = \"a.service\"\n", "it needs \"journal = true\""},
      {"journal = true\nunit = \"a/b\"\n", "must be a systemd unit name"},
  };
  for (const Case& k : cases) {
    auto e = parse_config(std::string("[[logwatch]]\nname = \"n\"\npattern = \"x\"\n") + k.body, "t.toml");
    ASSERT_TRUE(e) << k.body;
    ASSERT_FALSE(e->left_out.empty()) << k.body;
    EXPECT_NE(e->left_out[0].find(k.says), std::string::npos) << k.body << " -> " << e->left_out[0];
  }
}

// Journal files written by systemd-journal-remote from the export format
// (the fields as journald would have stored them).
struct JournalDir : TempDir {
  std::string write(uint32_t pid, const std::string& unit, const std::string& message) {
    static uint64_t seq = 0;
    seq++;
    const std::string entry = "__REALTIME_TIMESTAMP=" + std::to_string(1796650000000000ull + seq * 1000) +
                              "\n__MONOTONIC_TIMESTAMP=" + std::to_string(seq * 1000) +
                              "\n_BOOT_ID=0123456789abcdef0123456789abcdef\n" +
                              (pid ? "_PID=" + std::to_string(pid) + "\n" : std::string()) +
                              (unit.empty() ? std::string() : "_SYSTEMD_UNIT=" + unit + "\n") + "MESSAGE=" + message +
                              "\n\n";
    const std::string in = path + "/entry.export";
    std::ofstream(in, std::ios::trunc) << entry;
    const std::string cmd = "/lib/systemd/systemd-journal-remote -o " + path + "/j/remote.journal " + in +
                            " >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0 ? "" : "systemd-journal-remote failed: " + cmd;
  }
  JournalDir() { std::filesystem::create_directories(path + "/j"); }
};

TEST(JournalFollower, ReadsNewEntriesWithTheirPidFromTheEnd) {
  ASSERT_TRUE(std::filesystem::exists("/lib/systemd/systemd-journal-remote"))
      << "install systemd-journal-remote (scripts/install-deps test)";
  JournalDir d;
  ASSERT_EQ(d.write(100, "api.service", "ERROR before the daemon looked"), "");
  JournalFollower all(d.path + "/j", "");
  JournalFollower api(d.path + "/j", "api.service");
  struct Entry {
    std::string msg;
    uint32_t pid;
  };
  auto drain = [](JournalFollower& f) {
    std::vector<Entry> out;
    f.read(kMaxJournalEntries, [&](std::string_view m, uint32_t pid) { out.push_back({std::string(m), pid}); });
    return out;
  };
  EXPECT_TRUE(drain(all).empty());  // history
  EXPECT_TRUE(drain(api).empty());
  EXPECT_EQ(all.error(), "");
  EXPECT_TRUE(all.following());
  ASSERT_EQ(d.write(4242, "api.service", "ERROR one"), "");
  ASSERT_EQ(d.write(777, "db.service", "ERROR other unit"), "");
  ASSERT_EQ(d.write(0, "", "no pid at all"), "");
  auto got = drain(all);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].msg, "ERROR one");
  EXPECT_EQ(got[0].pid, 4242u);
  EXPECT_EQ(got[2].pid, 0u);
  auto mine = drain(api);
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].msg, "ERROR one");
  EXPECT_TRUE(drain(all).empty());
}

TEST(JournalFollower, AnAbsentJournalIsAnErrorNotAFailure) {
  JournalFollower f("/nonexistent/fp-journal", "");
  f.read(10, [](std::string_view, uint32_t) { FAIL() << "no entries from nothing"; });
  EXPECT_FALSE(f.following());
  EXPECT_NE(f.error().find("does not exist"), std::string::npos) << f.error();
}

TEST(LogWatchSet, JournalEntriesAreChargedToTheirPid) {
  ASSERT_TRUE(std::filesystem::exists("/lib/systemd/systemd-journal-remote"));
  JournalDir d;
  ASSERT_EQ(d.write(1, "init.scope", "start"), "");
  RuleConfig r = rule(FaultClass::AppErrors, 5, 1, 10s);
  r.name = "j";
  r.logwatch.journal = true;
  r.logwatch.journal_dir = d.path + "/j";
  r.logwatch.pattern = "ERROR";
  LogWatchSet set;
  set.set_rules({r});
  set.read();
  ASSERT_EQ(d.write(4242, "api.service", "ERROR boom"), "");
  ASSERT_EQ(d.write(4242, "api.service", "INFO fine"), "");
  set.read();
  const auto& m = set.matches("j");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].pid, 4242u);
  EXPECT_EQ(m[0].by, LogMatch::By::Journal);
  EXPECT_EQ(set.status()["j"]["writers_from"], "journal (_PID)");
  EXPECT_EQ(set.status()["j"]["entries"], 2);
}

class FakeLogs : public LogMatchSource {
 public:
  const std::vector<LogMatch>& matches(const std::string& rule) const override {
    auto it = by_rule.find(rule);
    return it == by_rule.end() ? none : it->second;
  }
  std::map<std::string, std::vector<LogMatch>> by_rule;
  std::vector<LogMatch> none;
};

LogMatch line(uint32_t pid, LogMatch::By by, std::string text, std::vector<uint32_t> writers = {}) {
  LogMatch m;
  m.pid = pid;
  m.by = by;
  m.line = std::move(text);
  m.writers = std::move(writers);
  return m;
}

TEST(AppErrorsDetector, CountsTheWritersLinesInTheWindow) {
  Sim s;
  FakeLogs logs;
  s.world.logs = &logs;
  s.add(make_app_errors(watch_rule("api", "/l", "ERROR")));
  s.spawn(100, "api");
  s.spawn(200, "worker");
  s.run(1);
  // 4 lines: below 5 (above resolve: a weak finding, which opens nothing).
  logs.by_rule["api"] = {line(100, LogMatch::By::Kernel, "ERROR a"), line(100, LogMatch::By::Kernel, "ERROR b"),
                         line(100, LogMatch::By::Kernel, "ERROR c"), line(100, LogMatch::By::Kernel, "ERROR d")};
  s.tick();
  logs.by_rule.clear();
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_FALSE(s.findings[0].strong);
  logs.by_rule["api"] = {line(100, LogMatch::By::Kernel, "ERROR \xff bytes")};
  s.tick();
  logs.by_rule.clear();
  ASSERT_EQ(s.findings.size(), 1u);
  const Finding& f = s.findings[0];
  EXPECT_EQ(f.culprit, s.key(100));
  EXPECT_TRUE(f.strong);
  EXPECT_EQ(f.evidence["value"], 5);
  EXPECT_EQ(f.evidence["writer_from"], "kernel");
  ASSERT_EQ(f.evidence["last_lines"].size(), 3u);
  EXPECT_EQ(f.evidence["last_lines"][2], "ERROR \xff bytes");
  // The window passes: below resolve (1), nothing.
  s.run(11);
  EXPECT_TRUE(s.findings.empty());
}

TEST(AppErrorsDetector, SeveralWritersOrNoneAreSettledByTheMatchOrNotAtAll) {
  Sim s;
  FakeLogs logs;
  s.world.logs = &logs;
  RuleConfig r = watch_rule("api", "/l", "ERROR");
  r.match.comm = "api";
  s.add(make_app_errors(r));
  s.spawn(100, "api");
  s.spawn(200, "logrotate");
  s.run(1);
  std::vector<LogMatch> both;
  for (int i = 0; i < 5; i++) both.push_back(line(0, LogMatch::By::None, "ERROR", {100, 200}));
  logs.by_rule["api"] = both;
  s.tick();
  ASSERT_EQ(s.findings.size(), 1u);
  EXPECT_EQ(s.findings[0].culprit, s.key(100));
  EXPECT_EQ(s.findings[0].evidence["writer_from"], "match");

  // Without a match, two writers are not guessed between.
  Sim t;
  FakeLogs logs2;
  t.world.logs = &logs2;
  t.add(make_app_errors(watch_rule("api", "/l", "ERROR")));
  t.spawn(100, "api");
  t.spawn(200, "other");
  t.run(1);
  logs2.by_rule["api"] = both;
  t.tick();
  logs2.by_rule.clear();
  EXPECT_TRUE(t.findings.empty());
  // A pid the table does not know (another namespace's, a thread's) is not blamed either.
  std::vector<LogMatch> stranger(6, line(999, LogMatch::By::Line, "ERROR"));
  logs2.by_rule["api"] = stranger;
  t.tick();
  EXPECT_TRUE(t.findings.empty());
}

TEST(AppErrorsDetector, NeverBlamesAProtectedOrPidOne) {
  Sim s;
  FakeLogs logs;
  s.world.logs = &logs;
  s.add(make_app_errors(watch_rule("api", "/l", "ERROR")));
  s.spawn(1, "init");
  s.run(1);
  logs.by_rule["api"] = std::vector<LogMatch>(10, line(1, LogMatch::By::Line, "ERROR"));
  s.tick();
  EXPECT_TRUE(s.findings.empty());
}

}  // namespace
}  // namespace fp
