#include "format.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "cordon/file_io.h"

namespace cordon::sealed {
namespace internal {
namespace {

constexpr std::string_view kKdfLabel = "cordon sealed v1";
constexpr std::size_t kFixedPrefix = 8 + 2 + 2 + 4 + 32 + 32;  // up to the key ref

void PutU16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void PutU32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}
void PutBytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
void PutString(std::vector<std::uint8_t>& out, std::string_view s) {
  out.insert(out.end(), s.begin(), s.end());
}

std::vector<std::uint8_t> EncodeWithoutMac(const Header& h) {
  std::vector<std::uint8_t> out;
  out.reserve(kFixedPrefix + 600);
  PutBytes(out, kMagic);
  PutU16(out, h.format_version);
  PutU16(out, 0);  // header length, patched below
  PutU32(out, h.chunk_bytes);
  PutBytes(out, h.salt);
  PutBytes(out, h.commitment);
  const std::string ref = h.key.ToString();
  out.push_back(static_cast<std::uint8_t>(ref.size()));
  PutString(out, ref);
  PutU32(out, h.kek_version);
  out.push_back(static_cast<std::uint8_t>(h.dataset.size()));
  PutString(out, h.dataset);
  out.push_back(static_cast<std::uint8_t>(h.job.size()));
  PutString(out, h.job);
  PutU16(out, static_cast<std::uint16_t>(h.wrapped_dek.size()));
  PutBytes(out, h.wrapped_dek);
  const std::size_t total = out.size() + kMacBytes;
  out[10] = static_cast<std::uint8_t>(total >> 8);
  out[11] = static_cast<std::uint8_t>(total);
  return out;
}

}  // namespace

std::vector<std::uint8_t> EncodeHeader(const Header& header) {
  std::vector<std::uint8_t> out = EncodeWithoutMac(header);
  PutBytes(out, header.mac);
  return out;
}

Result<DerivedKeys> DeriveKeys(const SecretBytes& dek, const Header& header) {
  std::vector<std::uint8_t> info(kKdfLabel.begin(), kKdfLabel.end());
  info.push_back(0);
  PutU32(info, header.chunk_bytes);
  info.push_back(static_cast<std::uint8_t>(header.dataset.size()));
  PutString(info, header.dataset);
  info.push_back(static_cast<std::uint8_t>(header.job.size()));
  PutString(info, header.job);

  std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), &EVP_KDF_free);
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr,
                                                                &EVP_KDF_CTX_free);
  if (!ctx) return Fail(Errc::kInternal, "OpenSSL has no HKDF");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(dek.data()), dek.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(header.salt.data()),
                                        header.salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes okm(96);
  if (EVP_KDF_derive(ctx.get(), okm.data(), okm.size(), params) != 1) {
    return Fail(Errc::kInternal, "HKDF-SHA256 failed");
  }
  DerivedKeys keys{SecretBytes::From(okm.span().subspan(0, 32)),
                   SecretBytes::From(okm.span().subspan(32, 32)), {}};
  std::copy_n(okm.data() + 64, 32, keys.commitment.begin());
  return keys;
}

Result<std::array<std::uint8_t, 32>> HeaderMac(const DerivedKeys& keys, const Header& header) {
  const std::vector<std::uint8_t> bytes = EncodeWithoutMac(header);
  std::array<std::uint8_t, 32> mac{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), keys.mac.data(), static_cast<int>(keys.mac.size()), bytes.data(), bytes.size(),
           mac.data(), &len) == nullptr ||
      len != mac.size()) {
    return Fail(Errc::kInternal, "HMAC-SHA256 of the header failed");
  }
  return mac;
}

Status VerifyHeader(const Header& header, const DerivedKeys& keys) {
  if (CRYPTO_memcmp(keys.commitment.data(), header.commitment.data(), 32) != 0) {
    return Fail(Errc::kTampered,
                "header tampered: the key commitment does not match the data key (salt, "
                "commitment, chunk size, dataset or job was altered)");
  }
  const auto mac = HeaderMac(keys, header);
  if (!mac) return std::unexpected(mac.error());
  if (CRYPTO_memcmp(mac->data(), header.mac.data(), 32) != 0) {
    return Fail(Errc::kTampered, "header tampered: the header MAC does not verify");
  }
  return {};
}

std::array<std::uint8_t, kNonceBytes> ChunkNonce(std::uint64_t index, bool final) {
  std::array<std::uint8_t, kNonceBytes> nonce{};
  for (int i = 0; i < 8; ++i) nonce[static_cast<std::size_t>(10 - i)] = static_cast<std::uint8_t>(index >> (8 * i));
  nonce[11] = final ? 1 : 0;
  return nonce;
}

}  // namespace internal

namespace {

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  bool Take(std::size_t n, std::span<const std::uint8_t>& out) {
    if (bytes_.size() - pos_ < n) return false;
    out = bytes_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  template <std::size_t N>
  bool Array(std::array<std::uint8_t, N>& out) {
    std::span<const std::uint8_t> s;
    if (!Take(N, s)) return false;
    std::copy(s.begin(), s.end(), out.begin());
    return true;
  }
  bool U8(std::size_t& v) {
    std::span<const std::uint8_t> s;
    if (!Take(1, s)) return false;
    v = s[0];
    return true;
  }
  bool U16(std::size_t& v) {
    std::span<const std::uint8_t> s;
    if (!Take(2, s)) return false;
    v = static_cast<std::size_t>(s[0]) << 8 | s[1];
    return true;
  }
  bool U32(std::uint32_t& v) {
    std::span<const std::uint8_t> s;
    if (!Take(4, s)) return false;
    v = static_cast<std::uint32_t>(s[0]) << 24 | static_cast<std::uint32_t>(s[1]) << 16 |
        static_cast<std::uint32_t>(s[2]) << 8 | s[3];
    return true;
  }
  bool String(std::size_t n, std::string& out) {
    std::span<const std::uint8_t> s;
    if (!Take(n, s)) return false;
    out.assign(s.begin(), s.end());
    return true;
  }
  std::size_t pos() const { return pos_; }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t pos_ = 0;
};

std::unexpected<Error> Short(std::string_view field) {
  return Fail(Errc::kTruncated, "truncated: the file ends inside the header (" + std::string(field) + ")");
}

}  // namespace

Status CheckDatasetName(std::string_view name) {
  if (name.empty() || name.size() > kMaxDatasetBytes) {
    return Fail(Errc::kInvalidArgument, "dataset name must be 1-255 bytes");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '/') {
      return Fail(Errc::kInvalidArgument, "dataset name must not contain control characters or '/'");
    }
  }
  return {};
}

Result<Header> ParseHeader(std::span<const std::uint8_t> bytes) {
  if (bytes.empty()) return Fail(Errc::kWrongFormat, "not a sealed file (empty)");
  Reader r(bytes);
  std::array<std::uint8_t, 8> magic{};
  if (!r.Array(magic) || magic != internal::kMagic) {
    if (bytes.size() < magic.size() &&
        std::equal(bytes.begin(), bytes.end(), internal::kMagic.begin())) {
      return Short("magic");
    }
    return Fail(Errc::kWrongFormat, "not a sealed file (no CSEAL magic at offset 0)");
  }
  Header h;
  std::size_t version = 0, header_bytes = 0;
  if (!r.U16(version)) return Short("format version");
  if (version != kFormatVersion) {
    return Fail(Errc::kUnsupported, "unsupported sealed-file format version " + std::to_string(version) +
                                        " (this build reads version " + std::to_string(kFormatVersion) + ")");
  }
  h.format_version = static_cast<std::uint16_t>(version);
  if (!r.U16(header_bytes)) return Short("header length");
  if (header_bytes > kMaxHeaderBytes || header_bytes < 80 + 8 + 32) {
    return Fail(Errc::kInvalidData, "header length " + std::to_string(header_bytes) + " is out of range");
  }
  if (!r.U32(h.chunk_bytes)) return Short("chunk size");
  if (h.chunk_bytes < kMinChunkBytes || h.chunk_bytes > kMaxChunkBytes) {
    return Fail(Errc::kInvalidData, "chunk size " + std::to_string(h.chunk_bytes) + " is out of range");
  }
  if (!r.Array(h.salt)) return Short("salt");
  if (!r.Array(h.commitment)) return Short("commitment");
  std::size_t n = 0;
  std::string text;
  if (!r.U8(n) || !r.String(n, text)) return Short("key reference");
  auto key = ParseKeyRef(text);
  if (!key) return Fail(Errc::kInvalidData, "bad key reference in header: " + key.error().message);
  h.key = std::move(*key);
  if (!r.U32(h.kek_version)) return Short("key version");
  if (h.kek_version == 0) return Fail(Errc::kInvalidData, "key version 0 in header");
  if (!r.U8(n) || !r.String(n, h.dataset)) return Short("dataset");
  if (auto ok = CheckDatasetName(h.dataset); !ok) {
    return Fail(Errc::kInvalidData, "bad dataset name in header: " + ok.error().message);
  }
  if (!r.U8(n) || !r.String(n, h.job)) return Short("job");
  if (!r.U16(n)) return Short("wrapped key length");
  if (n == 0 || n > kms::kMaxWrappedBytes) {
    return Fail(Errc::kInvalidData, "wrapped key length " + std::to_string(n) + " is out of range");
  }
  std::span<const std::uint8_t> wrapped;
  if (!r.Take(n, wrapped)) return Short("wrapped key");
  h.wrapped_dek.assign(wrapped.begin(), wrapped.end());
  if (!r.Array(h.mac)) return Short("header MAC");
  h.header_bytes = r.pos();
  if (h.header_bytes != header_bytes) {
    return Fail(Errc::kInvalidData, "header length field says " + std::to_string(header_bytes) +
                                        " bytes, the fields take " + std::to_string(h.header_bytes));
  }
  return h;
}

Result<SealedInfo> OpenSealed(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno("fstat");
  if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidArgument, "not a regular file");
  std::vector<std::uint8_t> buf(kMaxHeaderBytes);
  // Shared against `rewrap --all`'s in-place header write (WriteHeaders): the
  // header is read whole, old or new. Nothing else locks a sealed file.
  const bool locked = RetryEintr([&] { return ::flock(fd, LOCK_SH); }) == 0;
  const ssize_t got = RetryEintr([&] { return ::pread(fd, buf.data(), buf.size(), 0); });
  const int read_errno = errno;
  if (locked) (void)::flock(fd, LOCK_UN);
  errno = read_errno;
  if (got < 0) return FailErrno("read header");
  buf.resize(static_cast<std::size_t>(got));
  auto header = ParseHeader(buf);
  if (!header) return std::unexpected(header.error());
  SealedInfo info;
  info.sealed_bytes = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t body = info.sealed_bytes - header->header_bytes;
  const std::uint64_t record = std::uint64_t{header->chunk_bytes} + kTagBytes;
  info.chunks = body == 0 ? 0 : (body + record - 1) / record;
  const std::uint64_t tags = info.chunks * kTagBytes;
  info.plaintext_bytes = body > tags ? body - tags : 0;
  info.header = std::move(*header);
  return info;
}

}  // namespace cordon::sealed
