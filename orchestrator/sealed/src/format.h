// Internal to the sealed-file implementation: header encoding and key
// derivation (docs/SEALED-FORMAT.md is the normative description).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "cordon/sealed/sealed.h"

namespace cordon::sealed::internal {

inline constexpr std::array<std::uint8_t, 8> kMagic = {0x89, 'C', 'S', 'E', 'A', 'L', '\r', '\n'};
inline constexpr std::size_t kMacBytes = 32;
inline constexpr std::size_t kNonceBytes = 12;

// The header bytes, MAC included (header.mac is written as is).
[[nodiscard]] std::vector<std::uint8_t> EncodeHeader(const Header& header);

struct DerivedKeys {
  SecretBytes payload;                       // AES-256-GCM key of the chunks
  SecretBytes mac;                           // HMAC-SHA256 key of the header
  std::array<std::uint8_t, 32> commitment{};  // stored in the header
};

// HKDF-SHA256(ikm = dek, salt = header.salt, info = label | chunk_bytes |
// dataset | job) -> payload key | header MAC key | commitment.
[[nodiscard]] Result<DerivedKeys> DeriveKeys(const SecretBytes& dek, const Header& header);

// HMAC-SHA256 under keys.mac over the encoded header without its MAC.
[[nodiscard]] Result<std::array<std::uint8_t, 32>> HeaderMac(const DerivedKeys& keys, const Header& header);

// Key commitment (constant time), then the header MAC.
[[nodiscard]] Status VerifyHeader(const Header& header, const DerivedKeys& keys);

// The 96-bit chunk nonce: 88-bit big-endian chunk index | final flag.
[[nodiscard]] std::array<std::uint8_t, kNonceBytes> ChunkNonce(std::uint64_t index, bool final);

}  // namespace cordon::sealed::internal
