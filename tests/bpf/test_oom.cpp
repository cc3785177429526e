// OOM: a child over its memory cgroup's limit is marked as the OOM victim.
#include <sys/mman.h>

#include <filesystem>
#include <fstream>

#include "probe_fixture.h"

using namespace std::chrono_literals;
using namespace fp;
using namespace fp::test;
namespace fs = std::filesystem;

namespace {

// A memory cgroup of our own, v2 (memory.max) where the host has the memory
// controller there, v1 (memory.limit_in_bytes) otherwise.
class MemoryCgroup {
 public:
  explicit MemoryCgroup(uint64_t limit) {
    std::string name = "fp_test_oom_" + std::to_string(getpid());
    if (fs::exists("/sys/fs/cgroup/cgroup.controllers") && controllers_have("/sys/fs/cgroup", "memory")) {
      dir_ = "/sys/fs/cgroup/" + name;
      limit_file_ = "memory.max";
    } else if (fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
      dir_ = "/sys/fs/cgroup/memory/" + name;
      limit_file_ = "memory.limit_in_bytes";
    }
    if (dir_.empty()) return;
    fs::create_directory(dir_);
    ok_ = write(limit_file_, std::to_string(limit));
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  bool ok() const { return ok_; }
  std::string where() const { return dir_.empty() ? "(no memory controller)" : dir_; }
  bool add(pid_t pid) { return write("cgroup.procs", std::to_string(pid)); }

 private:
  static bool controllers_have(const std::string& root, const std::string& c) {
    std::ifstream in(root + "/cgroup.controllers");
    std::string tok;
    while (in >> tok)
      if (tok == c) return true;
    return false;
  }
  bool write(const std::string& file, const std::string& v) {
    std::ofstream out(dir_ + "/" + file);
    out << v;
    out.flush();
    return bool(out);
  }
  std::string dir_, limit_file_;
  bool ok_ = false;
};

}  // namespace

TEST(Oom, ChildOverItsCgroupLimitIsTheVictim) {
  probe();
  reset_events();
  MemoryCgroup cg(32u << 20);
  ASSERT_TRUE(cg.ok()) << "cannot set up a memory cgroup at " << cg.where();
  Child c([] {
    constexpr size_t kSize = 256u << 20;
    char* m = static_cast<char*>(
        mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (m == MAP_FAILED) return 10;
    for (size_t off = 0; off < kSize; off += 4096) m[off] = 1;
    return 0;  // not reached: the OOM killer takes it first
  });
  ASSERT_TRUE(cg.add(c.pid()));
  uint32_t pid = uint32_t(c.pid());
  c.release();
  int status = c.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child was not killed (exit " << WEXITSTATUS(status) << ")";
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  bool marked = wait_until(
      [&] {
        for (const auto& o : events().ooms)
          if (o.victim.tgid == pid) return true;
        return false;
      },
      3s);
  EXPECT_TRUE(marked) << "no oom_victim event for the child";
  auto ex = wait_exit(pid, 3s);
  ASSERT_TRUE(ex);
  EXPECT_GE(ex->final.oom_victim, 1u);
  EXPECT_EQ(decode_exit_code(ex->exit_code).signal, SIGKILL);
  for (const auto& o : events().ooms) {
    if (o.victim.tgid == pid) {
      EXPECT_EQ(o.victim.start_ns, ex->final.start_ns);
      EXPECT_GT(o.anon_rss_kb + o.total_vm_kb, 0u);
    }
  }
}
