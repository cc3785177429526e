// libFuzzer target: the TOML config parser (toml++ and then our typed checks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)fp::parse_config(text, "fuzz.toml");
  return 0;
}
