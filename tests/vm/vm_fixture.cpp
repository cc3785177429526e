#include "vm_fixture.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "../time_scale.h"
#include "e2e_fixture.h"

namespace fp::vm {

using e2e::slurp;

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

int sh(const std::string& cmd, std::string* out) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int st = pclose(p);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string need_cgroup2_controller(const std::string& controller) {
  std::string have = slurp("/sys/fs/cgroup/cgroup.subtree_control");
  std::istringstream in(have);
  for (std::string c; in >> c;)
    if (c == controller) return "";
  return "cgroup v2 at /sys/fs/cgroup does not delegate the " + controller +
         " controller (subtree_control: '" + trim(have) + "'): run the vm label through scripts/vmtest";
}

std::string need_module(const std::string& name) {
  struct stat st {};
  if (stat(("/sys/module/" + name).c_str(), &st) == 0) return "";
  return "kernel module " + name + " is not loaded: run the vm label through scripts/vmtest";
}

LoopDevice::LoopDevice(uint64_t mib) {
  char tmpl[] = "/tmp/fp_vm_loop_XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return;
  file_ = tmpl;
  if (ftruncate(fd, off_t(mib) << 20) != 0) {
    close(fd);
    return;
  }
  close(fd);
  std::string out;
  if (sh("losetup --find --show " + file_, &out) != 0) return;
  dev_ = trim(out);
  sectors_ = (mib << 20) / 512;
}

LoopDevice::~LoopDevice() {
  if (!dev_.empty()) sh("losetup -d " + dev_);
  if (!file_.empty()) unlink(file_.c_str());
}

DmDevice::DmDevice(const std::string& name, const std::string& table) : name_(name) {
  std::string out;
  if (sh("dmsetup create " + name_ + " --noudevsync --table '" + table + "'", &out) != 0) {
    error_ = "dmsetup create " + name_ + " (" + table + "): " + trim(out);
    return;
  }
  created_ = true;
  if (sh("dmsetup info -c --noheadings -o major,minor --separator : " + name_, &out) != 0) {
    error_ = "dmsetup info " + name_ + ": " + trim(out);
    return;
  }
  majmin_ = trim(out);
  std::string uevent = slurp("/sys/dev/block/" + majmin_ + "/uevent");
  auto p = uevent.find("DEVNAME=");
  if (p != std::string::npos) kname_ = trim(uevent.substr(p + 8, uevent.find('\n', p) - p - 8));
  // Without udev, make the node dmsetup's --noudevsync leaves to udev.
  struct stat st {};
  if (stat(path().c_str(), &st) != 0) {
    unsigned maj = 0, min = 0;
    std::sscanf(majmin_.c_str(), "%u:%u", &maj, &min);
    mkdir("/dev/mapper", 0755);
    if (mknod(path().c_str(), S_IFBLK | 0600, makedev(maj, min)) != 0) error_ = "mknod " + path();
  }
}

DmDevice::~DmDevice() {
  if (created_) sh("dmsetup remove --noudevsync " + name_ + " || dmsetup remove --force --noudevsync " + name_);
  unlink(path().c_str());
}

std::string inject_mce(int cpu, uint64_t status, uint64_t mcg_status, uint64_t addr, uint64_t misc, int bank) {
  const char* port = std::getenv("FP_VMTEST_MCE_PORT");
  if (port == nullptr || *port == '\0')
    return "error no machine-check port (FP_VMTEST_MCE_PORT): not in a scripts/vmtest guest";
  int fd = open(port, O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("error open ") + port;
  char line[160];
  int n = std::snprintf(line, sizeof line, "mce %d %d 0x%llx 0x%llx 0x%llx 0x%llx\n", cpu, bank,
                        static_cast<unsigned long long>(status), static_cast<unsigned long long>(mcg_status),
                        static_cast<unsigned long long>(addr), static_cast<unsigned long long>(misc));
  if (write(fd, line, size_t(n)) != n) {
    close(fd);
    return "error write to the machine-check port";
  }
  std::string answer;
  auto end = std::chrono::steady_clock::now() + fp::test::scaled(std::chrono::seconds(10));
  while (answer.find('\n') == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[256];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r > 0) answer.append(buf, size_t(r));
  }
  close(fd);
  if (answer.empty()) return "error no answer from the relay";
  return trim(answer.substr(0, answer.find('\n')));
}

}  // namespace fp::vm
