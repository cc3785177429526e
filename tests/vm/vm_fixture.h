// Helpers for the VM-only tests (label vm), which run inside scripts/vmtest's
// guest: prerequisites that fail loudly, block devices made for one test
// (loop, device-mapper), and machine checks injected by the host's QEMU.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace fp::vm {

// "" when the prerequisite holds, else what is missing (for ASSERT messages).
std::string need_cgroup2_controller(const std::string& controller);
std::string need_module(const std::string& name);  // loaded or built in: /sys/module/NAME

// Runs a command through /bin/sh; its exit status, output in *out.
int sh(const std::string& cmd, std::string* out = nullptr);

// A loop device over a sparse file in /tmp (removed with the object).
class LoopDevice {
 public:
  explicit LoopDevice(uint64_t mib);
  ~LoopDevice();
  const std::string& path() const { return dev_; }  // "" if it could not be made
  uint64_t sectors() const { return sectors_; }

 private:
  std::string file_, dev_;
  uint64_t sectors_ = 0;
};

// A device-mapper device with one table line (removed with the object).
class DmDevice {
 public:
  DmDevice(const std::string& name, const std::string& table);
  ~DmDevice();
  const std::string& error() const { return error_; }  // "" once it exists
  std::string path() const { return "/dev/mapper/" + name_; }
  std::string majmin() const { return majmin_; }  // "253:0"
  std::string kname() const { return kname_; }    // "dm-0"

 private:
  std::string name_, error_, majmin_, kname_;
  bool created_ = false;
};

// Asks the host's QEMU (HMP `mce`) through scripts/vmtest's virtio-serial
// relay to raise a machine check on `cpu`: a corrected memory error in bank 1
// by default. Returns the relay's answer: "ok", or "error ..." (also when
// there is no relay: not in scripts/vmtest).
std::string inject_mce(int cpu, uint64_t status = 0x9c00000000000090ull, uint64_t mcg_status = 0,
                       uint64_t addr = 0x1234000, uint64_t misc = 0x86, int bank = 1);

}  // namespace fp::vm
