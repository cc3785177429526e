// libFuzzer target: the socket API's request parser, fed whole buffers as one
// line and also split at newlines the way the server splits its input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)fp::parse_request(in);
  (void)fp::parse_request(in, 64);  // a small limit takes the length check's paths
  for (size_t start = 0; start < in.size();) {
    size_t nl = in.find('\n', start);
    if (nl == std::string_view::npos) nl = in.size();
    auto r = fp::parse_request(in.substr(start, nl - start));
    if (!r.ok()) (void)fp::error_reply(r.error().message);  // error text from arbitrary bytes must serialize
    start = nl + 1;
  }
  return 0;
}
