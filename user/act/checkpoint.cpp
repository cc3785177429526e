#include "act/checkpoint.h"

#include "act/systemd.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace fp {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_small_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The line of criu's output that says what went wrong. criu prints errors as
// "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds", often after
// "Error (criu/util.c:642): exited, status=1" from a helper that only reports
// that a child failed; the first line with a real cause is the useful one.
std::string first_error_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, first_error, last_nonempty;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    last_nonempty = line;
    if (line.find("Error") == std::string::npos) continue;
    if (line.find("exited, status=") == std::string::npos) return line;
    if (first_error.empty()) first_error = line;
  }
  if (!first_error.empty()) return first_error;
  return last_nonempty.empty() ? "no output" : last_nonempty;
}

// Image directories are numbered: "000042" (complete) or "000042.tmp".
std::optional<uint64_t> image_seq(const std::string& name) {
  std::string digits = ends_with(name, ".tmp") ? name.substr(0, name.size() - 4) : name;
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  return std::stoull(digits);
}

// Complete image directories, oldest first.
std::vector<std::pair<uint64_t, fs::path>> complete_images(const std::string& root) {
  std::vector<std::pair<uint64_t, fs::path>> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    auto seq = image_seq(name);
    if (!seq || ends_with(name, ".tmp") || !it->is_directory(ec)) continue;
    out.emplace_back(*seq, it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string seq_name(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%06llu", static_cast<unsigned long long>(seq));
  return buf;
}

}  // namespace

std::vector<CheckpointEntry> complete_checkpoints(const std::string& dir) {
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    // In-progress or editor leftovers: a service writes NAME.tmp and renames.
    if (name.empty() || name[0] == '.' || ends_with(name, ".tmp") || ends_with(name, ".partial") ||
        ends_with(name, "~"))
      continue;
    std::error_code sec;
    fs::file_status st = it->symlink_status(sec);
    if (sec || !(fs::is_regular_file(st) || fs::is_directory(st))) continue;
    auto mtime = fs::last_write_time(it->path(), sec);
    if (sec) continue;  // vanished meanwhile
    found.emplace_back(mtime, name);
  }
  std::sort(found.begin(), found.end());
  std::vector<CheckpointEntry> out;
  out.reserve(found.size());
  for (auto& [mtime, name] : found) out.push_back({(fs::path(dir) / name).string(), mtime});
  return out;
}

std::optional<std::string> newest_complete_checkpoint(const std::string& dir) {
  auto all = complete_checkpoints(dir);
  if (all.empty()) return std::nullopt;
  return all.back().path;
}

// One runner for every helper command the daemon starts (criu here,
// systemctl in systemd.cpp): posix_spawnp, own process group, killed on timeout.
Result<int> run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, std::string* out) {
  RealCommandRunner runner;
  return runner.run(argv, timeout, out);
}

CriuBackend::CriuBackend(CommandRunnerFn run) : run_(std::move(run)) {}

CriuStatus CriuBackend::probe(const CommandRunnerFn& run) {
  CriuStatus st;
  std::string out;
  auto v = run({"criu", "--version"}, std::chrono::seconds(10), &out);
  if (!v) {
    st.reason = v.error().code == ENOENT ? "criu not installed" : v.error().message;
    return st;
  }
  if (*v != 0) {
    st.reason = "criu --version failed (exit " + std::to_string(*v) + "): " + first_error_line(out);
    return st;
  }
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Version:", 0) == 0) {
      st.version = line.substr(8);
      st.version.erase(0, st.version.find_first_not_of(' '));
      break;
    }
  }
  // `criu check` initialises everything dump and restore need (kerndat, the
  // vDSO layout, ...): when it fails, so would every dump.
  out.clear();
  auto c = run({"criu", "check"}, std::chrono::seconds(30), &out);
  if (!c) {
    st.reason = "criu check: " + c.error().message;
    return st;
  }
  if (*c != 0) {
    std::string line = first_error_line(out);
    st.reason = "criu check failed: " + line;
    if (line.find("vdso") != std::string::npos || line.find("vDSO") != std::string::npos)
      st.reason += " (CRIU before 4.1 cannot start on kernels >= 6.13: the vDSO layout changed)";
    return st;
  }
  st.available = true;
  return st;
}

const CriuStatus& CriuBackend::probe() {
  status_ = probe(run_);
  if (status_.available)
    spdlog::info("CRIU {} works on this kernel: criu checkpoints enabled", status_.version);
  else
    spdlog::warn("CRIU unavailable: {}; services with checkpoint backend criu restart without restore",
                 status_.reason);
  return status_;
}

std::vector<CheckpointEntry> CriuBackend::images(const std::string& image_root) {
  std::vector<CheckpointEntry> out;
  for (const auto& [seq, path] : complete_images(image_root)) {
    std::error_code ec;
    auto mtime = fs::last_write_time(path, ec);
    if (!ec) out.push_back({path.string(), mtime});
  }
  return out;
}

std::optional<std::string> CriuBackend::newest_image(const std::string& image_root) {
  auto images = complete_images(image_root);
  if (images.empty()) return std::nullopt;
  return images.back().second.string();
}

Result<std::string> CriuBackend::dump(pid_t pid, const std::string& image_root, uint32_t keep) {
  std::error_code ec;
  fs::create_directories(image_root, ec);
  if (ec) return Error{ec.value(), "cannot create " + image_root + ": " + ec.message()};
  uint64_t next = 1;
  for (fs::directory_iterator it(image_root, ec), end; !ec && it != end; it.increment(ec)) {
    if (auto seq = image_seq(it->path().filename().string())) next = std::max(next, *seq + 1);
  }
  const fs::path final_dir = fs::path(image_root) / seq_name(next);
  const fs::path tmp_dir = fs::path(image_root) / (seq_name(next) + ".tmp");
  fs::create_directory(tmp_dir, ec);
  if (ec) return Error{ec.value(), "cannot create " + tmp_dir.string() + ": " + ec.message()};

  std::string out;
  auto rc = run_({"criu", "dump", "-t", std::to_string(pid), "-D", tmp_dir.string(), "--leave-running",
                  "--shell-job", "-o", "dump.log"},
                 std::chrono::seconds(60), &out);
  if (!rc || *rc != 0) {
    std::string why = !rc ? rc.error().message
                          : "exit " + std::to_string(*rc) + ": " +
                                first_error_line(out + "\n" + read_small_file(tmp_dir / "dump.log"));
    fs::remove_all(tmp_dir, ec);
    return Error{!rc ? rc.error().code : EIO, "criu dump of pid " + std::to_string(pid) + " failed: " + why};
  }
  fs::rename(tmp_dir, final_dir, ec);
  if (ec) {
    fs::remove_all(tmp_dir, ec);
    return Error{EIO, "cannot rename " + tmp_dir.string() + " to " + final_dir.string()};
  }
  // Rotation: only complete images count, so a failed dump never costs a good one.
  auto images = complete_images(image_root);
  const size_t keep_n = std::max<uint32_t>(keep, 1);
  for (size_t i = 0; i + keep_n < images.size(); ++i) fs::remove_all(images[i].second, ec);
  return final_dir.string();
}

std::vector<std::string> CriuBackend::restore_argv(const std::string& image_dir) {
  return {"criu", "restore", "-D", image_dir, "--shell-job", "-d", "--pidfile", restore_pidfile(image_dir), "-o",
          "restore.log"};
}

std::string CriuBackend::restore_pidfile(const std::string& image_dir) {
  return (fs::path(image_dir) / "restore.pid").string();
}

std::string CriuBackend::restore_error(const std::string& image_dir) {
  return first_error_line(read_small_file(fs::path(image_dir) / "restore.log"));
}

Result<pid_t> CriuBackend::restore(const std::string& image_dir) {
  const fs::path pidfile = restore_pidfile(image_dir);
  std::error_code ec;
  fs::remove(pidfile, ec);
  std::string out;
  auto rc = run_(restore_argv(image_dir), std::chrono::seconds(60), &out);
  if (!rc) return Error{rc.error().code, "criu restore from " + image_dir + " failed: " + rc.error().message};
  if (*rc != 0) {
    return Error{EIO, "criu restore from " + image_dir + " failed (exit " + std::to_string(*rc) +
                          "): " + first_error_line(out + "\n" + read_small_file(fs::path(image_dir) / "restore.log"))};
  }
  std::string text = read_small_file(pidfile);
  long pid = 0;
  try {
    pid = std::stol(text);
  } catch (const std::exception&) {
    pid = 0;
  }
  if (pid <= 0) return Error{EIO, "criu restore from " + image_dir + ": no pid in " + pidfile.string()};
  return static_cast<pid_t>(pid);
}

}  // namespace fp
