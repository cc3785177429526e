#include "probe/pin.h"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <cstdint>
#include <vector>

namespace fp::pin {

uint64_t fnv1a(const void* data, size_t len, uint64_t h) {
  auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

Result<void> check_bpffs(const std::string& path) {
  // The nearest existing ancestor decides: the pin dir itself is created later.
  std::filesystem::path probe = std::filesystem::absolute(path).lexically_normal();
  while (!exists(probe.string()) && probe.has_parent_path() && probe != probe.parent_path())
    probe = probe.parent_path();
  struct statfs fs{};
  if (::statfs(probe.c_str(), &fs) != 0) return Error::from_errno(errno, "cannot inspect " + probe.string());
  if (fs.f_type != BPF_FS_MAGIC)
    return Error{ENOTSUP, path + " is not on a BPF filesystem (mount one: mount -t bpf bpf /sys/fs/bpf)"};
  if (probe != std::filesystem::absolute(path).lexically_normal() &&
      probe != std::filesystem::absolute(path).lexically_normal().parent_path())
    return Error{ENOENT, "the parent of " + path + " does not exist"};
  return {};
}

Result<void> pin_fd(int fd, const std::string& path) {
  if (bpf_obj_pin(fd, path.c_str()) != 0) return Error::from_errno(errno, "cannot pin " + path);
  return {};
}

Result<int> open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Error::from_errno(errno, "cannot open the pinned " + path);
  return fd;
}

Result<void> check_map(int fd, const char* name, uint32_t type, uint32_t key_size, uint32_t value_size,
                       uint32_t max_entries) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return Error::from_errno(errno, std::string("pinned ") + name + " is not a map");
  auto differs = [&](const char* what, uint32_t have, uint32_t want) {
    return Error{EINVAL, std::string("pinned map ") + name + " has " + what + " " + std::to_string(have) +
                             ", this probe needs " + std::to_string(want)};
  };
  if (info.type != type) return differs("type", info.type, type);
  if (key_size != kAnySize && info.key_size != key_size) return differs("key size", info.key_size, key_size);
  if (value_size != kAnySize && info.value_size != value_size)
    return differs("value size", info.value_size, value_size);
  if (max_entries != kAnySize && info.max_entries != max_entries)
    return differs("max_entries", info.max_entries, max_entries);
  return {};
}

Result<void> check_link(int fd, const std::string& name) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.id == 0 || info.prog_id == 0)
    return Error{EINVAL, "pinned " + name + " is not an attached bpf_link"};
  return {};
}

Result<void> write_meta(const std::string& dir, const PinMeta& meta) {
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fp_meta", sizeof(uint32_t), sizeof(PinMeta), 1, nullptr);
  if (fd < 0) return Error::from_errno(errno, "cannot create the pin metadata map");
  uint32_t key = 0;
  Result<void> r;
  if (bpf_map_update_elem(fd, &key, &meta, BPF_ANY) != 0)
    r = Error::from_errno(errno, "cannot write the pin metadata");
  else
    r = pin_fd(fd, dir + "/meta");
  close(fd);
  return r;
}

Result<PinMeta> read_meta(const std::string& dir) {
  if (!exists(dir + "/meta"))
    return Error{ENOENT, "the pins in " + dir + " are incomplete (no meta: an interrupted start?)"};
  auto fd = open_pinned(dir + "/meta");
  if (!fd) return fd.error();
  PinMeta meta{};
  uint32_t key = 0;
  Result<void> shape = check_map(*fd, "meta", BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(PinMeta), 1);
  int err = shape ? (bpf_map_lookup_elem(*fd, &key, &meta) == 0 ? 0 : errno) : 0;
  close(*fd);
  if (!shape) return Error{EINVAL, shape.error().message + " (pinned by another faultprobe version)"};
  if (err) return Error::from_errno(err, "cannot read the pin metadata in " + dir);
  if (meta.magic != kMetaMagic || meta.format != kMetaFormat)
    return Error{EINVAL, "the pins in " + dir + " were written by another faultprobe version"};
  return meta;
}

Result<void> remove_dir(const std::string& dir) {
  if (!exists(dir)) return {};
  if (auto fs = check_bpffs(dir); !fs) return Error{fs.error().code, "refusing to remove " + dir + ": " +
                                                                         fs.error().message};
  std::error_code ec;
  std::vector<std::filesystem::path> links, rest;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    (name.rfind("link_", 0) == 0 ? links : rest).push_back(e.path());
  }
  if (ec) return Error{ec.value(), "cannot list " + dir + ": " + ec.message()};
  // Unpinning the last reference to a link detaches its program.
  for (auto* group : {&links, &rest}) {
    for (const auto& p : *group) {
      if (std::filesystem::remove_all(p, ec) == static_cast<std::uintmax_t>(-1) || ec)
        return Error{ec.value(), "cannot unpin " + p.string() + ": " + ec.message()};
    }
  }
  if (::rmdir(dir.c_str()) != 0) return Error::from_errno(errno, "cannot remove " + dir);
  return {};
}

}  // namespace fp::pin
