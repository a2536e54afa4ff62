// libFuzzer target: the runner's control-socket decoders (channel.h) see every
// datagram the sandbox init sends and the init sees the runner's answers. They
// must never crash; what they accept must encode back to exactly the bytes
// they were given (no two frames mean the same thing).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "channel.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ch = cordon::runner::internal;
  const std::string_view datagram(reinterpret_cast<const char*>(data), size);
  const auto message = ch::DecodeMessage(datagram);
  if (!message) return size == 0 ? 0 : (std::abort(), 0);
  if (size <= ch::kMaxMessageBytes &&
      ch::EncodeMessage(static_cast<ch::Msg>(message->type), message->payload) != datagram) {
    std::abort();
  }
  if (auto request = ch::DecodeWrapRequest(message->payload)) {
    auto again = ch::EncodeWrapRequest(request->context, request->dek);
    if (!again || *again != message->payload) std::abort();
  }
  if (auto reply = ch::DecodeWrapReply(datagram)) {
    if (message->type != static_cast<char>(ch::Msg::kWrapResponse) ||
        ch::EncodeWrapResponse(*reply) != message->payload) {
      std::abort();
    }
  } else if (reply.error().message.empty()) {
    std::abort();
  }
  return 0;
}
