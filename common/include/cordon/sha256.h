// Streaming SHA-256 (OpenSSL EVP) with every call checked, and the "sha256:<hex>" form Cordon
// writes digests in (sealed files, OCI blobs, dataset versions).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cordon/error.h"

namespace cordon {

class Sha256 final {
 public:
  Sha256();  // a failed set-up is reported by the first Update or Finish
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  [[nodiscard]] Status Update(std::span<const std::uint8_t> bytes);
  [[nodiscard]] Status Update(std::string_view bytes) {
    return Update({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  }
  // "sha256:<64 lower-case hex>"; the hasher is spent afterwards.
  [[nodiscard]] Result<std::string> Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// "sha256:<hex>" of `bytes` in one call.
[[nodiscard]] Result<std::string> Sha256Digest(std::string_view bytes);

}  // namespace cordon
