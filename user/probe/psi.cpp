#include "probe/psi.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>

#include "util/file.h"

namespace fp {
namespace {

constexpr size_t kMaxPsiBytes = 4096;  // two lines of ~70 bytes

std::optional<double> parse_double(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "avg10=1.23 avg60=0.50 avg300=0.10 total=123456" (after "some "/"full ").
Result<PsiLine> parse_line(std::string_view rest, std::string_view kind) {
  PsiLine l;
  bool seen[4] = {false, false, false, false};
  while (!rest.empty()) {
    const size_t sp = rest.find(' ');
    std::string_view field = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    if (field.empty()) continue;
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos) return Error{EINVAL, "\"" + std::string(kind) + "\" field without \"=\""};
    std::string_view key = field.substr(0, eq), val = field.substr(eq + 1);
    double* avg = key == "avg10" ? &l.avg10 : key == "avg60" ? &l.avg60 : key == "avg300" ? &l.avg300 : nullptr;
    if (avg != nullptr) {
      auto v = parse_double(val);
      if (!v) return Error{EINVAL, "bad " + std::string(key) + " in the \"" + std::string(kind) + "\" line"};
      *avg = *v;
      seen[key == "avg10" ? 0 : key == "avg60" ? 1 : 2] = true;
    } else if (key == "total") {
      auto v = parse_u64(val);
      if (!v) return Error{EINVAL, "bad total in the \"" + std::string(kind) + "\" line"};
      l.total_us = *v;
      seen[3] = true;
    }  // a field a later kernel adds is skipped
  }
  if (!seen[0] || !seen[3])
    return Error{EINVAL, "the \"" + std::string(kind) + "\" line lacks avg10 or total"};
  return l;
}

}  // namespace

const char* psi_resource_name(PsiResource r) {
  switch (r) {
    case PsiResource::Cpu: return "cpu";
    case PsiResource::Memory: return "memory";
    case PsiResource::Io: return "io";
  }
  return "?";
}

Result<PsiReading> parse_psi(std::string_view text) {
  PsiReading r;
  bool some = false;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    std::string_view kind = line.substr(0, sp);
    if (kind != "some" && kind != "full") continue;
    auto l = parse_line(line.substr(sp + 1), kind);
    if (!l) return l.error();
    if (kind == "some") {
      r.some = *l;
      some = true;
    } else {
      r.full = *l;
    }
  }
  if (!some) return Error{EINVAL, "no \"some\" line"};
  return r;
}

std::string psi_trigger_text(const PsiTrigger& t) {
  return std::string(t.full ? "full " : "some ") + std::to_string(t.stall_us) + " " + std::to_string(t.window_us);
}

std::string PsiFiles::path(PsiResource r) const { return dir_ + "/" + psi_resource_name(r) + suffix_; }

Result<PsiReading> PsiFiles::read(PsiResource r) const {
  Fd& fd = open_.fds[static_cast<size_t>(r)];
  if (!fd.valid()) fd = Fd(::open(path(r).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.valid()) {
    char buf[kMaxPsiBytes];
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf, 0);
    if (n >= 0 && size_t(n) < sizeof buf) {
      auto psi = parse_psi(std::string_view(buf, size_t(n)));
      if (psi) return psi;
    }
    fd.reset();  // gone (a removed cgroup), or odd: read it the long way, with its error
  }
  const std::string p = path(r);
  auto text = read_file(p, kMaxPsiBytes);
  if (!text) return text.error();
  auto psi = parse_psi(*text);
  if (!psi) return Error{psi.error().code, p + ": " + psi.error().message};
  return psi;
}

Result<Fd> PsiFiles::open_trigger(PsiResource r, const PsiTrigger& t) const {
  const std::string p = path(r);
  // O_NOFOLLOW: the path is the kernel's (or a cgroup's), never a link a user planted.
  Fd fd(::open(p.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return Error::from_errno(errno, "cannot open " + p + " for a PSI trigger");
  const std::string text = psi_trigger_text(t);
  // The kernel wants the trigger with its terminating NUL.
  if (::write(fd.get(), text.c_str(), text.size() + 1) < 0)
    return Error::from_errno(errno, "cannot set the PSI trigger \"" + text + "\" on " + p);
  return fd;
}

}  // namespace fp
