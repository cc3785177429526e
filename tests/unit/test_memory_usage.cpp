#include <gtest/gtest.h>

#include "util/memory_usage.h"

namespace fp {
namespace {

TEST(MemoryUsage, ParsesTheRssLinesOfProcStatusInBytes) {
  const char* text =
      "Name:\tfaultprobed\n"
      "VmPeak:\t  123456 kB\n"
      "VmHWM:\t   20480 kB\n"
      "VmRSS:\t   16384 kB\n"
      "RssAnon:\t    6000 kB\n"
      "RssFile:\t   10000 kB\n"
      "RssShmem:\t     384 kB\n"
      "Threads:\t2\n";
  MemoryUsage m;
  parse_proc_status_memory(text, m);
  EXPECT_EQ(m.rss, 16384u * 1024);
  EXPECT_EQ(m.hwm, 20480u * 1024);
  EXPECT_EQ(m.rss_anon, 6000u * 1024);
  EXPECT_EQ(m.rss_file, 10000u * 1024);
  EXPECT_EQ(m.rss_shmem, 384u * 1024);
}

TEST(MemoryUsage, MissingOrMalformedLinesLeaveTheFieldAlone) {
  MemoryUsage m;
  m.rss_shmem = 7;
  parse_proc_status_memory("VmRSS:\tlots kB\nRssAnon:\t12 kB", m);  // no trailing newline
  EXPECT_EQ(m.rss, 0u);
  EXPECT_EQ(m.rss_anon, 12u * 1024);
  EXPECT_EQ(m.rss_shmem, 7u);
}

TEST(MemoryUsage, OfThisProcessIsPlausible) {
  MemoryUsage m = memory_usage();
  EXPECT_GT(m.rss, 0u);
  EXPECT_GE(m.hwm, m.rss);
#if !defined(__SANITIZE_ADDRESS__)
  // (ASan's allocator replaces glibc's, whose mallinfo2() then reports nothing)
  EXPECT_GT(m.heap_in_use, 0u);
#endif
  EXPECT_LE(m.rss_anon + m.rss_file + m.rss_shmem, m.rss + 4096);
}

TEST(MemoryUsage, StatusFieldsAreNamedWithTheirUnit) {
  MemoryUsage m;
  m.rss = 1;
  m.hwm = 2;
  m.rss_anon = 3;
  m.rss_file = 4;
  m.rss_shmem = 5;
  m.heap_in_use = 6;
  m.heap_free = 7;
  m.heap_mmapped = 8;
  auto j = memory_usage_json(m);
  EXPECT_EQ(j.size(), 8u);
  EXPECT_EQ(j["rss_bytes"], 1u);
  EXPECT_EQ(j["hwm_bytes"], 2u);
  EXPECT_EQ(j["rss_anon_bytes"], 3u);
  EXPECT_EQ(j["rss_file_bytes"], 4u);
  EXPECT_EQ(j["rss_shmem_bytes"], 5u);
  EXPECT_EQ(j["heap_in_use_bytes"], 6u);
  EXPECT_EQ(j["heap_free_bytes"], 7u);
  EXPECT_EQ(j["heap_mmapped_bytes"], 8u);
}

}  // namespace
}  // namespace fp
