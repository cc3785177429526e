// CgroupOps on a FakeTree that keeps the kernel's rules, so the throttle
// backends can be tested without cgroupfs:
//   - a process is in one group per hierarchy: moving it removes it from the
//     cgroup.procs of every other group of that hierarchy;
//   - a group with processes or child groups cannot be removed (EBUSY);
//   - cgroup v2: a group (not the root) with controllers in its
//     cgroup.subtree_control takes no process, and one with processes enables
//     none (EBUSY); a controller's files exist only in groups whose parent
//     enables it (ENOENT), and a parent can enable only what it has itself;
//   - per-device files (io.max, blkio.throttle.*) keep one line per device;
//   - ownership: status() reports a chosen uid for chosen paths (a subtree
//     delegated to a user) without needing root to chown.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "act/cgroup_ops.h"
#include "act/cgroupfs.h"
#include "fake_tree.h"

namespace fp::test {

class FakeCgroupFs : public CgroupOps {
 public:
  // roots: the absolute directories of the hierarchies' roots (v1 mounts);
  // v2_roots: those of them that are cgroup v2.
  FakeCgroupFs(std::vector<std::string> roots, std::set<std::string> v2_roots)
      : roots_(std::move(roots)), v2_(std::move(v2_roots)) {}

  std::set<pid_t> dead;                   // move() of these is ESRCH
  std::map<std::string, uid_t> owners;    // status() of these paths reports this uid
  int moves = 0;
  // Called after each move (a test makes a process fork into a group there).
  std::function<void(pid_t, const std::string&)> after_move;

  // A process appears in a group (born there, as a fork is).
  void add(pid_t pid, const std::string& dir) {
    auto ps = read_pids(dir);
    ps.push_back(pid);
    write_pids(dir, ps);
  }
  // A process exits: the kernel drops it from its groups.
  void exit(pid_t pid) {
    dead.insert(pid);
    for (const auto& r : roots_)
      for (const auto& d : all_groups(r)) {
        auto ps = read_pids(d);
        if (std::find(ps.begin(), ps.end(), pid) == ps.end()) continue;
        ps.erase(std::remove(ps.begin(), ps.end(), pid), ps.end());
        write_pids(d, ps);
      }
  }

  Result<void> make_group(const std::string& dir) override {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(dir).parent_path())) return Error{ENOENT, "no parent: " + dir};
    std::filesystem::create_directory(dir, ec);
    if (ec) return Error{ec.value(), "mkdir " + dir};
    touch(dir + "/cgroup.procs");
    if (is_v2(dir)) touch(dir + "/cgroup.subtree_control");
    return {};
  }

  Result<void> remove_group(const std::string& dir) override {
    if (!std::filesystem::exists(dir)) return {};
    auto p = pids(dir);
    if ((p.ok() && !p->empty()) || !subdirs(dir).empty()) return Error{EBUSY, "rmdir " + dir + ": busy"};
    return fp::remove_group(dir);
  }

  Result<void> move(pid_t pid, const std::string& dir) override {
    ++moves;
    if (!std::filesystem::is_directory(dir)) return Error{ENOENT, "no group " + dir};
    if (dead.count(pid)) return Error{ESRCH, "no such process " + std::to_string(pid)};
    if (is_v2(dir) && dir != root_of(dir) && !words(dir + "/cgroup.subtree_control").empty())
      return Error{EBUSY, dir + " hands controllers down: no process may live in it"};
    for (const auto& d : all_groups(root_of(dir))) {
      auto ps = read_pids(d);
      if (std::find(ps.begin(), ps.end(), pid) == ps.end()) continue;
      ps.erase(std::remove(ps.begin(), ps.end(), pid), ps.end());
      write_pids(d, ps);
    }
    add(pid, dir);
    if (after_move) after_move(pid, dir);
    return {};
  }

  Result<void> write(const std::string& path, const std::string& value) override {
    const std::string dir = std::filesystem::path(path).parent_path().string();
    const std::string file = std::filesystem::path(path).filename().string();
    if (!std::filesystem::is_directory(dir)) return Error{ENOENT, "no group " + dir};
    if (is_v2(dir) && file == "cgroup.subtree_control") return write_subtree_control(dir, value);
    if (is_v2(dir) && file.find('.') != std::string::npos && file.rfind("cgroup.", 0) != 0) {
      // A controller's file: only where the parent hands the controller down.
      std::string ctrl = file.substr(0, file.find('.'));
      if (dir == root_of(dir) || !has(words(parent(dir) + "/cgroup.subtree_control"), ctrl))
        return Error{ENOENT, path + ": controller " + ctrl + " not enabled for this group"};
    }
    if (file == "io.max" || file.rfind("blkio.throttle.", 0) == 0) return write_device_line(path, value);
    return CgroupOps::write(path, value);
  }

  Result<struct stat> status(const std::string& path) override {
    auto st = CgroupOps::status(path);
    if (!st.ok()) return st;
    if (auto it = owners.find(path); it != owners.end()) st->st_uid = it->second;
    return st;
  }

  // The pids a group lists, for the tests' own checks.
  std::vector<pid_t> members(const std::string& dir) { return read_pids(dir); }

 private:
  static void touch(const std::string& path) {
    if (!std::filesystem::exists(path)) std::ofstream{path};
  }
  static std::string parent(const std::string& dir) { return std::filesystem::path(dir).parent_path().string(); }
  static bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  std::string root_of(const std::string& dir) const {
    for (const auto& r : roots_)
      if (dir == r || dir.rfind(r + "/", 0) == 0) return r;
    return dir;
  }
  bool is_v2(const std::string& dir) const { return v2_.count(root_of(dir)) > 0; }
  std::vector<std::string> words(const std::string& file) {
    auto text = read(file);
    std::vector<std::string> out;
    if (!text.ok()) return out;
    std::istringstream in(*text);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  }
  std::vector<pid_t> read_pids(const std::string& dir) {
    auto p = pids(dir);
    return p.ok() ? *p : std::vector<pid_t>{};
  }
  void write_pids(const std::string& dir, const std::vector<pid_t>& ps) {
    std::string text;
    for (pid_t p : ps) text += std::to_string(p) + "\n";
    (void)CgroupOps::write(dir + "/cgroup.procs", text);
  }
  std::vector<std::string> all_groups(const std::string& root) {
    std::vector<std::string> out{root};
    for (const auto& e : std::filesystem::recursive_directory_iterator(root))
      if (e.is_directory()) out.push_back(e.path().string());
    return out;
  }
  Result<void> write_subtree_control(const std::string& dir, const std::string& value) {
    auto have = words(dir + "/cgroup.subtree_control");
    const bool root = dir == root_of(dir);
    std::istringstream in(value);
    for (std::string tok; in >> tok;) {
      std::string c = tok.substr(1);
      if (tok[0] == '+') {
        bool available = root ? has(words(dir + "/cgroup.controllers"), c)
                              : has(words(parent(dir) + "/cgroup.subtree_control"), c);
        if (!available) return Error{ENOENT, dir + " does not have controller " + c};
        if (!root && !read_pids(dir).empty()) return Error{EBUSY, dir + " has processes of its own"};
        if (!has(have, c)) have.push_back(c);
      } else if (tok[0] == '-') {
        for (const auto& sub : subdirs(dir))
          if (has(words(dir + "/" + sub + "/cgroup.subtree_control"), c))
            return Error{EBUSY, dir + "/" + sub + " still hands " + c + " down"};
        have.erase(std::remove(have.begin(), have.end(), c), have.end());
      } else {
        return Error{EINVAL, "bad token " + tok};
      }
    }
    std::string text;
    for (const auto& c : have) text += (text.empty() ? "" : " ") + c;
    return CgroupOps::write(dir + "/cgroup.subtree_control", text);
  }
  // One line per device; a line that sets no limit ("DEV 0", "DEV rbps=max
  // wbps=max") removes the device's.
  Result<void> write_device_line(const std::string& path, const std::string& value) {
    std::string dev = value.substr(0, value.find(' '));
    std::map<std::string, std::string> keys;  // v2 "rbps" -> "1000"; v1 "" -> "1000"
    auto parse = [&](const std::string& line) {
      std::istringstream in(line.substr(line.find(' ') + 1));
      for (std::string w; in >> w;) {
        auto eq = w.find('=');
        if (eq == std::string::npos)
          keys[""] = w;
        else
          keys[w.substr(0, eq)] = w.substr(eq + 1);
      }
    };
    std::vector<std::string> lines;
    auto text = read(path);
    std::istringstream in(text.ok() ? *text : "");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(dev + " ", 0) == 0)
        parse(line);
      else if (!line.empty())
        lines.push_back(line);
    }
    parse(value);
    std::string merged = dev;
    bool any = false;
    for (const auto& [k, v] : keys) {
      if (v == "max" || v == "0") continue;
      any = true;
      merged += " " + (k.empty() ? v : k + "=" + v);
    }
    if (any) lines.push_back(merged);
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return CgroupOps::write(path, out);
  }

  std::vector<std::string> roots_;
  std::set<std::string> v2_;
};

}  // namespace fp::test
