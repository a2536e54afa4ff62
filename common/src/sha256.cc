#include "cordon/sha256.h"

#include <openssl/evp.h>

#include <array>

#include "cordon/hex.h"

namespace cordon {

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {}
Sha256::~Sha256() = default;

Status Sha256::Update(std::span<const std::uint8_t> bytes) {
  if (!ctx_->ok || EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()) != 1) {
    ctx_->ok = false;
    return Fail(Errc::kInternal, "SHA-256 failed");
  }
  return {};
}

Result<std::string> Sha256::Finish() {
  std::array<std::uint8_t, 32> digest{};
  unsigned int len = 0;
  if (!ctx_->ok || EVP_DigestFinal_ex(ctx_->md, digest.data(), &len) != 1 || len != digest.size()) {
    ctx_->ok = false;
    return Fail(Errc::kInternal, "SHA-256 failed");
  }
  ctx_->ok = false;  // spent
  return "sha256:" + HexEncode(digest);
}

Result<std::string> Sha256Digest(std::string_view bytes) {
  Sha256 h;
  if (auto ok = h.Update(bytes); !ok) return std::unexpected(ok.error());
  return h.Finish();
}

}  // namespace cordon
