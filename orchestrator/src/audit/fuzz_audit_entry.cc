// libFuzzer target: the strict audit entry parser and the checkpoint parser
// (both read files an attacker with write access to the log directory controls).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cordon::audit::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto entry = ParseEntryLine(text);
  if (entry) {
    // A line that parses must be exactly its own canonical form.
    auto again = Canonical(entry->json);
    if (!again || *again != text) __builtin_trap();
  }
  Identity id;
  id.origin = "cordon.audit/fuzz/0000000000000000";
  (void)ParseCheckpoints(text, id);
  (void)DecodeState(text);
  (void)DecodeVerifierKey(text);
  return 0;
}
