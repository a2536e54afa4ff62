// libFuzzer target: the sealed-file header parser on arbitrary bytes.
// ParseHeader must never read out of bounds, crash or accept a header whose
// re-encoding differs from the input (the encoding is canonical, so the MAC
// computed over a re-encoded header covers exactly the bytes on disk).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "cordon/sealed/sealed.h"
#include "format.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  auto header = cordon::sealed::ParseHeader(bytes);
  if (!header) return 0;
  const auto encoded = cordon::sealed::internal::EncodeHeader(*header);
  if (encoded.size() != header->header_bytes || encoded.size() > size ||
      !std::equal(encoded.begin(), encoded.end(), data)) {
    std::abort();  // parse/encode disagree: a MAC could cover other bytes than those on disk
  }
  return 0;
}
