// Lower-case hexadecimal, both ways (digests, key ids, names made safe for file names).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cordon {

[[nodiscard]] std::string HexEncode(std::span<const std::uint8_t> bytes);
[[nodiscard]] inline std::string HexEncode(std::string_view bytes) {
  return HexEncode({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
}
// The bytes of lower-case hex text; nullopt for an odd length or any other character.
[[nodiscard]] std::optional<std::string> HexDecode(std::string_view hex);

}  // namespace cordon
