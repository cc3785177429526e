#include "util/memory_usage.h"

#include <malloc.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace fp {

void parse_proc_status_memory(std::string_view text, MemoryUsage& out) {
  struct Field {
    std::string_view key;
    uint64_t MemoryUsage::*dst;
  };
  static constexpr Field kFields[] = {{"VmRSS:", &MemoryUsage::rss},
                                      {"VmHWM:", &MemoryUsage::hwm},
                                      {"RssAnon:", &MemoryUsage::rss_anon},
                                      {"RssFile:", &MemoryUsage::rss_file},
                                      {"RssShmem:", &MemoryUsage::rss_shmem}};
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    for (const auto& f : kFields) {
      if (line.substr(0, f.key.size()) != f.key) continue;
      std::string_view rest = line.substr(f.key.size());
      size_t start = rest.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      rest = rest.substr(start);
      uint64_t kb = 0;
      auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kb);
      if (ec == std::errc() && p != rest.data()) out.*f.dst = kb * 1024;
      break;
    }
  }
}

MemoryUsage memory_usage() {
  MemoryUsage m;
  std::ifstream in("/proc/self/status");
  std::stringstream ss;
  ss << in.rdbuf();
  parse_proc_status_memory(ss.str(), m);
  struct mallinfo2 mi = mallinfo2();
  m.heap_in_use = mi.uordblks + mi.hblkhd;
  m.heap_free = mi.fordblks;
  m.heap_mmapped = mi.hblkhd;
  return m;
}

nlohmann::json memory_usage_json(const MemoryUsage& m) {
  return {{"rss_bytes", m.rss},           {"hwm_bytes", m.hwm},
          {"rss_anon_bytes", m.rss_anon}, {"rss_file_bytes", m.rss_file},
          {"rss_shmem_bytes", m.rss_shmem}, {"heap_in_use_bytes", m.heap_in_use},
          {"heap_free_bytes", m.heap_free}, {"heap_mmapped_bytes", m.heap_mmapped}};
}

}  // namespace fp
