// io_storm: a process reading or writing a file at a set rate.
// io_error: a process reading a device-mapper "error" device (every read fails).
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include "faultgen/faults.h"
#include "faultgen/logic.h"

namespace fg {

namespace {

constexpr int64_t kTickNs = 100'000'000;
constexpr uint64_t kAlign = 4096;    // O_DIRECT: buffer, offset and length
constexpr uint64_t kChunk = kMiB;    // largest single read/write

void* aligned_buffer(size_t size) {
  void* buf = nullptr;
  if (posix_memalign(&buf, kAlign, size) != 0) child_fail("out of memory");
  // Not zeros, not trivially compressible.
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto* words = static_cast<uint64_t*>(buf);
  for (size_t i = 0; i < size / sizeof(uint64_t); ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    words[i] = x;
  }
  return buf;
}

// Fills the whole file once so reads have something to read, and drops it
// from the page cache so they go to the disk.
void fill(int fd, void* buf, uint64_t size, bool direct) {
  for (uint64_t off = 0; off < size; off += kChunk) {
    if (pwrite(fd, buf, kChunk, static_cast<off_t>(off)) != static_cast<ssize_t>(kChunk)) {
      child_fail_errno("writing the file to read");
    }
  }
  if (fdatasync(fd) != 0) child_fail_errno("fdatasync");
  if (!direct) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

[[noreturn]] void io_body(ChildContext& ctx, const IoOptions& o, int fd) {
  const uint64_t size = static_cast<uint64_t>(o.size_mb) * kMiB;
  const double rate = o.rate_mb * static_cast<double>(kMiB);
  // Never more than a second behind: a slow disk must not cause a catch-up burst.
  const uint64_t max_backlog = std::max<uint64_t>(kChunk, static_cast<uint64_t>(rate));
  void* buf = aligned_buffer(kChunk);
  if (o.read) fill(fd, buf, size, o.direct);
  // Buffered reads: no readahead, so what is read is what goes to the disk.
  if (o.read && !o.direct) posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);

  ctx.ready();
  const int64_t start = mono_ns();
  uint64_t done = 0;
  for (int64_t tick = 1;; ++tick) {
    uint64_t due = due_bytes(rate, mono_ns() - start, kAlign, std::numeric_limits<uint64_t>::max());
    if (due > done + max_backlog) done = due - max_backlog;
    bool wrote = false;
    while (done < due) {
      uint64_t off = done % size;
      uint64_t len = std::min({kChunk, due - done, size - off});
      ssize_t n = o.read ? pread(fd, buf, len, static_cast<off_t>(off)) : pwrite(fd, buf, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) child_fail_errno(o.read ? "read" : "write");
      if (o.read && !o.direct) posix_fadvise(fd, static_cast<off_t>(off), n, POSIX_FADV_DONTNEED);
      wrote = wrote || !o.read;
      done += static_cast<uint64_t>(n);
    }
    if (wrote && !o.direct && fdatasync(fd) != 0) child_fail_errno("fdatasync");
    sleep_until(start + tick * kTickNs);
  }
}

// An unnamed file in `dir` (O_TMPFILE, or created and unlinked at once): it
// disappears when the last process holding it ends, however faultgen ends.
Result<int> open_scratch_file(const std::string& dir, bool direct) {
  using fp::Error;
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string path = dir + "/.faultgen-io-" + std::to_string(getpid());
    fd = open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) unlink(path.c_str());
  }
  if (fd < 0) return Error::from_errno(errno, "cannot create a file in --dir " + dir);
  if (direct && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) != 0) {
    int err = errno;
    close(fd);
    return Error::from_errno(err, "--direct: the filesystem of " + dir + " does not support O_DIRECT");
  }
  return fd;
}

}  // namespace

int run_io(Supervisor& sup, const IoOptions& o) {
  struct statfs fs{};
  if (statfs(o.dir.c_str(), &fs) != 0) {
    std::fprintf(stderr, "%s: --dir %s: %s\n", sup.name().c_str(), o.dir.c_str(), std::strerror(errno));
    return kExitUsage;
  }
  if (o.direct && fs.f_type == TMPFS_MAGIC) {
    std::fprintf(stderr, "%s: --direct needs a disk-backed --dir; %s is tmpfs\n", sup.name().c_str(),
                 o.dir.c_str());
    return kExitUsage;
  }
  auto fd = open_scratch_file(o.dir, o.direct);
  if (!fd) {
    std::fprintf(stderr, "%s: %s\n", sup.name().c_str(), fd.error().message.c_str());
    return kExitUsage;
  }
  auto child = sup.spawn("fg-io", [&](ChildContext& ctx) { io_body(ctx, o, *fd); });
  close(*fd);  // the child has it
  if (!child) return sup.fail(child.error());
  sup.announce("io_storm", child->pid);
  return sup.hold();
}

// ---------------------------------------------------------------------------
// io_error

namespace {

constexpr uint64_t kErrSectors = 8192;  // 4 MiB of nothing but errors

bool device_mapper_loaded() {
  std::ifstream misc("/proc/misc");
  std::string line;
  while (std::getline(misc, line)) {
    if (line.find("device-mapper") != std::string::npos) return true;
  }
  return false;
}

// A dm "error" device and a block node for it; removed on destruction, after
// the Supervisor has stopped whatever was reading it.
class DmErrorDevice {
 public:
  explicit DmErrorDevice(Supervisor& sup) : sup_(sup), name_("faultgen-err-" + std::to_string(getpid())) {}
  ~DmErrorDevice() {
    sup_.stop_all();
    if (!node_.empty()) unlink(node_.c_str());
    if (created_ && run_program({"dmsetup", "remove", "--noudevsync", name_}, false) != 0) {
      std::fprintf(stderr, "%s: could not remove %s: run `dmsetup remove %s`\n", sup_.name().c_str(),
                   name_.c_str(), name_.c_str());
    }
  }
  DmErrorDevice(const DmErrorDevice&) = delete;
  DmErrorDevice& operator=(const DmErrorDevice&) = delete;

  // Returns what went wrong, or "" once node() can be opened.
  std::string create() {
    std::string table = "0 " + std::to_string(kErrSectors) + " error";
    if (run_program({"dmsetup", "create", name_, "--noudevsync", "--table", table}, false) != 0) {
      return "dmsetup create " + name_ + " with an \"error\" table failed";
    }
    created_ = true;
    std::string dev = find_dev();
    unsigned maj = 0, min = 0;
    if (std::sscanf(dev.c_str(), "%u:%u", &maj, &min) != 2) {
      return "cannot find the device of " + name_ + " in /sys/block";
    }
    node_ = "/dev/" + name_;
    if (mknod(node_.c_str(), S_IFBLK | 0600, makedev(maj, min)) != 0) {
      std::string err = "mknod " + node_ + ": " + std::strerror(errno);
      node_.clear();
      return err;
    }
    return "";
  }
  const std::string& node() const { return node_; }

 private:
  // "253:0" for the dm device named name_.
  std::string find_dev() const {
    DIR* d = opendir("/sys/block");
    if (d == nullptr) return "";
    std::string found;
    while (dirent* e = readdir(d)) {
      std::string base = std::string("/sys/block/") + e->d_name;
      std::string name;
      if (std::ifstream(base + "/dm/name") >> name && name == name_) {
        std::ifstream(base + "/dev") >> found;
        break;
      }
    }
    closedir(d);
    return found;
  }

  Supervisor& sup_;
  std::string name_;
  std::string node_;
  bool created_ = false;
};

[[noreturn]] void ioerr_body(ChildContext& ctx, const std::string& node, double rate) {
  int fd = open(node.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) child_fail_errno("open " + node);
  void* buf = aligned_buffer(kAlign);
  ctx.ready();
  const int64_t period = static_cast<int64_t>(1e9 / rate);
  const int64_t start = mono_ns();
  for (uint64_t i = 0;; ++i) {
    off_t off = static_cast<off_t>((i * kAlign) % (kErrSectors * 512));
    if (pread(fd, buf, kAlign, off) >= 0) child_fail(node + " returned data: not an error device");
    sleep_until(start + static_cast<int64_t>(i + 1) * period);
  }
}

}  // namespace

Availability ioerr_available() {
  if (!device_mapper_loaded() && find_program("modprobe")) {
    run_program({"modprobe", "dm_mod"});
  }
  if (!device_mapper_loaded()) {
    if (access("/sys/bus/pseudo/drivers/scsi_debug", F_OK) == 0) {
      return {false, "scsi_debug is loaded but faultgen ioerr uses a device-mapper error target (needs dm-mod)"};
    }
    return {false, "no device-mapper error target or scsi_debug on this machine (needs dm-mod)"};
  }
  if (!find_program("dmsetup")) return {false, "device-mapper is present but dmsetup is not (needs dmsetup)"};
  return {};
}

int run_ioerr(Supervisor& sup, const IoErrOptions& o) {
  if (Availability a = ioerr_available(); !a.ok) {
    std::fprintf(stderr, "%s: %s\n", sup.name().c_str(), a.missing.c_str());
    return kExitUnavailable;
  }
  DmErrorDevice dev(sup);
  if (std::string err = dev.create(); !err.empty()) {
    std::fprintf(stderr, "%s: %s\n", sup.name().c_str(), err.c_str());
    return kExitUnavailable;
  }
  auto child = sup.spawn("fg-ioerr", [&](ChildContext& ctx) { ioerr_body(ctx, dev.node(), o.rate); });
  if (!child) return sup.fail(child.error());
  sup.announce("io_error", child->pid);
  return sup.hold();
}

}  // namespace fg
