// libFuzzer target: the strict YAML loader and the spec validator must never
// crash, hang or leak on any input, and must either produce a job or explain
// why not.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cordon/specs/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const cordon::specs::ParseResult result = cordon::specs::ParseSpec(text);
  if (result.job.has_value() == !result.diagnostics.empty()) std::abort();
  for (const auto& diagnostic : result.diagnostics) {
    if (diagnostic.mark.line < 1 || diagnostic.mark.column < 1 || diagnostic.message.empty()) {
      std::abort();
    }
  }
  if (result.job) (void)cordon::specs::ToJson(*result.job).dump();
  return 0;
}
