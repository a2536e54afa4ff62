// libFuzzer target: the control protocol's decoder sees every byte a local
// user sends to cordond. It must never throw, crash or hang; what it accepts
// must survive an encode/decode round trip unchanged; replies built from any
// bytes must encode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cordon/daemon/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace p = cordon::protocol;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  if (auto request = p::ParseRequest(line)) {
    auto again = p::ParseRequest(p::EncodeRequest(*request));
    if (!again || again->op != request->op || again->spec != request->spec || again->job != request->job ||
        again->spec_path != request->spec_path) {
      std::abort();
    }
  } else if (request.error().message.empty()) {
    std::abort();
  }
  (void)p::ParseReply(line);
  if (p::EncodeReply(p::ErrorReply(p::ReplyCode::kInvalid, line)).back() != '\n') std::abort();
  return 0;
}
