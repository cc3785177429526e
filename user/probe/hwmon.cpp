#include "probe/hwmon.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <regex>

namespace fp {
namespace {

namespace fs = std::filesystem;

// One sysfs value: whole file, trailing whitespace trimmed. errno-style error.
struct Read {
  std::string text;
  int err = 0;
};

Read read_file(const std::string& path) {
  Read r;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  if (n < 0) r.err = errno;
  ::close(fd);
  if (n > 0) r.text.assign(buf, size_t(n));
  while (!r.text.empty() && (r.text.back() == '\n' || r.text.back() == ' ')) r.text.pop_back();
  return r;
}

std::optional<long long> parse_int(const std::string& s) {
  long long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Values a sensor of this kind can hold (anything else is a driver's garbage).
bool plausible(SensorReading::Kind k, double v) {
  if (k == SensorReading::Kind::Temperature) return v > -274.0 && v < 1000.0;
  return v > -1000.0 && v < 1000.0;
}

std::optional<double> limit(const std::string& base, const char* suffix, double scale) {
  Read r = read_file(base + suffix);
  if (r.err != 0) return std::nullopt;  // a missing limit is normal
  auto v = parse_int(r.text);
  if (!v) return std::nullopt;
  return double(*v) / scale;
}

}  // namespace

HwmonScan HwmonReader::scan() {
  HwmonScan out;
  scans_++;
  std::set<std::string> seen;
  std::error_code ec;
  std::vector<fs::path> chips;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) chips.push_back(it->path());
  std::sort(chips.begin(), chips.end());
  static const std::regex kInput("^(temp|in)([0-9]+)_input$");
  for (const fs::path& chip : chips) {
    std::string chip_name = read_file((chip / "name").string()).text;
    if (chip_name.empty()) chip_name = chip.filename().string();
    std::vector<std::string> files;
    std::error_code ec2;
    for (fs::directory_iterator it(chip, ec2), end; !ec2 && it != end; it.increment(ec2))
      files.push_back(it->path().filename().string());
    std::sort(files.begin(), files.end());
    for (const std::string& f : files) {
      std::smatch m;
      if (!std::regex_match(f, m, kInput)) continue;
      SensorReading r;
      r.kind = m[1] == "temp" ? SensorReading::Kind::Temperature : SensorReading::Kind::Voltage;
      const std::string channel = m[1].str() + m[2].str();
      const std::string base = (chip / channel).string();
      r.path = base + "_input";
      r.sensor = chip_name + "/" + channel;
      const std::string where = chip.filename().string() + "/" + f;
      // millidegrees C, millivolts
      const double scale = 1000.0;
      Read in = read_file(r.path);
      if (in.err == ENOENT) continue;  // gone between the listing and the read: vanished below
      seen.insert(r.path);
      if (in.err != 0) {
        out.problems.push_back(where + ": " + std::strerror(in.err));
        out.garbage++;
        continue;
      }
      auto v = parse_int(in.text);
      if (!v || !plausible(r.kind, double(*v) / scale)) {
        out.problems.push_back(where + ": unusable value \"" + in.text.substr(0, 32) + "\"");
        out.garbage++;
        continue;
      }
      r.value = double(*v) / scale;
      r.label = read_file(base + "_label").text;
      r.lcrit = limit(base, "_lcrit", scale);
      r.min = limit(base, "_min", scale);
      r.max = limit(base, "_max", scale);
      r.crit = limit(base, "_crit", scale);
      out.readings.push_back(std::move(r));
    }
  }
  for (const std::string& p : known_) {
    if (seen.count(p) != 0) continue;
    out.problems.push_back(p + ": vanished");
    out.vanished++;
  }
  known_ = std::move(seen);
  garbage_total_ += out.garbage;
  vanished_total_ += out.vanished;
  return out;
}

std::optional<LimitCrossing> limit_crossed(const SensorReading& r) {
  auto set = [](const std::optional<double>& l) { return l && *l != 0.0; };
  if (set(r.crit) && r.value >= *r.crit) return LimitCrossing{true, "crit", *r.crit};
  if (r.lcrit && r.value <= *r.lcrit && set(r.lcrit)) return LimitCrossing{true, "lcrit", *r.lcrit};
  if (set(r.max) && r.value > *r.max) return LimitCrossing{false, "max", *r.max};
  if (r.min && r.value < *r.min) return LimitCrossing{false, "min", *r.min};
  return std::nullopt;
}

}  // namespace fp
