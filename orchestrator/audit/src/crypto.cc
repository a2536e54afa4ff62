// SHA-256, HMAC-SHA256, the key schedule and Ed25519 over OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init/Update/Final: see Digest()
#include "cordon/hex.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>

#include "internal.h"

namespace cordon::audit::internal {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// SHA-256 of the concatenation of `parts` through the low-level SHA256_*
// functions, which call the assembly block function directly. OpenSSL 3
// deprecates them in favour of EVP, but EVP (and the one-shot SHA256(), which
// fetches an EVP_MD under a lock on every call) costs more per call than
// hashing a 500-byte entry, and the verifier hashes four times per entry.
Bytes32 Digest(std::initializer_list<std::string_view> parts, bool secret = true) {
  Bytes32 out{};
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  for (std::string_view p : parts) SHA256_Update(&ctx, p.data(), p.size());
  SHA256_Final(out.data(), &ctx);
  if (secret) OPENSSL_cleanse(&ctx, sizeof ctx);  // may have held key material (HMAC pads, keys)
  return out;
}

std::string_view View(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

// Lower-case hex digit values; -1 for anything else (upper case is not canonical).
struct HexTable {
  std::array<std::int8_t, 256> v{};
  constexpr HexTable() {
    for (auto& x : v) x = -1;
    for (int c = '0'; c <= '9'; ++c) v[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) v[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
  }
};
constexpr HexTable kHex;
int HexValue(char c) { return kHex.v[static_cast<unsigned char>(c)]; }

}  // namespace

Bytes32 Sha256(std::string_view data) { return Digest({data}); }
Bytes32 Sha256Parts(std::initializer_list<std::string_view> parts) { return Digest(parts); }
Bytes32 Sha256PublicParts(std::initializer_list<std::string_view> parts) { return Digest(parts, false); }

Bytes32 HmacSha256(const Bytes32& key, const Bytes32& message) {
  std::array<std::uint8_t, 64> ipad{};
  std::array<std::uint8_t, 64> opad{};
  for (std::size_t i = 0; i < 64; ++i) {
    const std::uint8_t k = i < key.size() ? key[i] : 0;
    ipad[i] = static_cast<std::uint8_t>(k ^ 0x36);
    opad[i] = static_cast<std::uint8_t>(k ^ 0x5c);
  }
  const Bytes32 inner = Digest({View(ipad.data(), 64), View(message.data(), 32)});
  Bytes32 out = Digest({View(opad.data(), 64), View(inner.data(), 32)});
  Cleanse(ipad.data(), ipad.size());
  Cleanse(opad.data(), opad.size());
  return out;
}

Bytes32 EvolveKey(const Bytes32& key) {
  static constexpr std::string_view kLabel{"cordon-audit-key-evolve-v1\0", 27};
  return Digest({kLabel, View(key.data(), key.size())});
}

std::string Hex(const std::uint8_t* data, std::size_t size) { return HexEncode({data, size}); }

std::optional<Bytes32> Unhex32(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Bytes32 out{};
  for (std::size_t i = 0; i < 32; ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

std::string Base64(const std::uint8_t* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> Unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0 || text.size() > 4096) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  if (text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  if (Base64(reinterpret_cast<const std::uint8_t*>(out.data()), out.size()) != text) return std::nullopt;
  return out;
}

Status RandomBytes(std::uint8_t* out, std::size_t size) {
  if (RAND_priv_bytes(out, static_cast<int>(size)) != 1) {
    return Fail(Errc::kInternal, "RAND_priv_bytes failed");
  }
  return {};
}

bool Equal32(const Bytes32& a, const Bytes32& b) { return CRYPTO_memcmp(a.data(), b.data(), 32) == 0; }

void Cleanse(void* p, std::size_t n) { OPENSSL_cleanse(p, n); }

namespace {
std::unique_ptr<EVP_PKEY, PkeyFree> PrivateKey(const Bytes32& seed) {
  return std::unique_ptr<EVP_PKEY, PkeyFree>(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
}
}  // namespace

Result<Bytes32> Ed25519PublicFromSeed(const Bytes32& seed) {
  auto key = PrivateKey(seed);
  Bytes32 pub{};
  std::size_t len = pub.size();
  if (!key || EVP_PKEY_get_raw_public_key(key.get(), pub.data(), &len) != 1 || len != 32) {
    return Fail(Errc::kInternal, "Ed25519: cannot derive the public key");
  }
  return pub;
}

Result<std::string> Ed25519Sign(const Bytes32& seed, std::string_view message) {
  auto key = PrivateKey(seed);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string sig(64, '\0');
  std::size_t len = sig.size();
  if (!key || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != 64) {
    return Fail(Errc::kInternal, "Ed25519: signing failed");
  }
  return sig;
}

bool Ed25519Verify(const Bytes32& public_key, std::string_view message, std::string_view signature) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!key || !ctx || signature.size() != 64) return false;
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace cordon::audit::internal
