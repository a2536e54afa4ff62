// SHA-256, HMAC-SHA256, the key schedule and Ed25519 over OpenSSL 3.
#define OPENSSL_SUPPRESS_DEPRECATED  // SHA256_Init/Update/Final: see Digest()
#include "cordon/hex.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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

#if !defined(__SSE2__)
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
#endif

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

#if defined(__SSE2__)
namespace {
// 16 lower-case hex digits to their values (0..15); `ok` is cleared when one
// is not a lower-case hex digit. Unsigned compares through a sign flip.
__m128i HexValues16(__m128i x, bool& ok) {
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
  const __m128i l = _mm_sub_epi8(x, _mm_set1_epi8('a'));
  const __m128i is_digit = _mm_cmplt_epi8(_mm_xor_si128(d, flip), _mm_set1_epi8(static_cast<char>(10 ^ 0x80)));
  const __m128i is_letter = _mm_cmplt_epi8(_mm_xor_si128(l, flip), _mm_set1_epi8(static_cast<char>(6 ^ 0x80)));
  ok = ok && _mm_movemask_epi8(_mm_or_si128(is_digit, is_letter)) == 0xffff;
  return _mm_or_si128(_mm_and_si128(is_digit, d), _mm_and_si128(is_letter, _mm_add_epi8(l, _mm_set1_epi8(10))));
}
// Digit values (first digit of each byte in the even position) to 8 bytes.
__m128i PairUp(__m128i v) {
  const __m128i high = _mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x00ff)), 4);
  return _mm_or_si128(high, _mm_srli_epi16(v, 8));
}
}  // namespace

// The verifier decodes three per entry: 16 digits at a time.
std::optional<Bytes32> Unhex32(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  Bytes32 out{};
  bool ok = true;
  for (std::size_t half = 0; half < 2; ++half) {
    const char* p = hex.data() + 32 * half;
    const __m128i a = HexValues16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), ok);
    const __m128i b = HexValues16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)), ok);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out.data() + 16 * half), _mm_packus_epi16(PairUp(a), PairUp(b)));
  }
  if (!ok) return std::nullopt;
  return out;
}
#else
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
#endif

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
