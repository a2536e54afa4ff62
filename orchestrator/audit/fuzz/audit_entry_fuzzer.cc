// libFuzzer target: the strict audit entry parser, the checkpoint parser, the
// MAC state and the verifier keys of logs and witnesses (all read files an
// attacker with write access to the log directory, or a hostile peer, controls).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cordon::audit::internal;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // The fast scanner and the nlohmann-json reference must agree on every
  // input, and on the hash of every accepted line.
  auto fast = ScanEntryLine(text);
  auto reference = ParseEntryLineReference(text);
  if (fast.has_value() != reference.has_value()) __builtin_trap();
  if (fast) {
    if (!Equal32(fast->computed, reference->computed) || fast->seq != reference->seq) __builtin_trap();
    auto again = Canonical(reference->json);
    if (!again || *again != text) __builtin_trap();
  }
  Identity id;
  id.origin = "cordon.audit/fuzz/0000000000000000";
  (void)ParseCheckpoints(text, id);
  (void)DecodeState(text);
  (void)DecodeVerifierKey(text);
  (void)ParseLogVerifierKey(text);
  (void)ParseWitnessVerifierKey(text);
  return 0;
}
