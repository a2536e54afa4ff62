// SecretBytes: a fixed-size buffer for key material (KEKs, DEKs, derived keys,
// PINs) that never leaves a copy behind it controls.
//
//  * The bytes live in their own anonymous mapping, mlock'ed (best effort: a
//    failed mlock — RLIMIT_MEMLOCK — is tolerated and reported by locked()),
//    and excluded from core dumps (MADV_DONTDUMP).
//  * Destruction and move-from wipe the bytes with OPENSSL_cleanse before the
//    mapping is unmapped, or, for a locked single page, kept (zeroed, locked,
//    out of core dumps) for the next SecretBytes of at most a page: up to 64
//    such pages per process, forgotten by a forked child (secret.cc, PagePool).
//  * Move-only: a copy must be explicit (Copy()), so a reviewer can grep for it.
//
// What it cannot do: bytes that passed through other buffers (a std::string
// read from a file, a pipe buffer, CPU registers) are outside its reach; the
// code that fills a SecretBytes cleanses its own temporaries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "cordon/error.h"

namespace cordon {

class SecretBytes final {
 public:
  SecretBytes() = default;
  // `size` zero bytes; an allocation failure is fatal (std::bad_alloc).
  explicit SecretBytes(std::size_t size);
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  ~SecretBytes();

  // `size` bytes from the OS CSPRNG (RAND_bytes).
  [[nodiscard]] static Result<SecretBytes> Random(std::size_t size);
  // A locked copy of `bytes` (the caller cleanses its own source).
  [[nodiscard]] static SecretBytes From(std::span<const std::uint8_t> bytes);

  [[nodiscard]] SecretBytes Copy() const;
  [[nodiscard]] std::uint8_t* data() { return data_; }
  [[nodiscard]] const std::uint8_t* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] bool locked() const { return locked_; }
  [[nodiscard]] std::span<std::uint8_t> span() { return {data_, size_}; }
  [[nodiscard]] std::span<const std::uint8_t> span() const { return {data_, size_}; }

  // Constant-time equality (CRYPTO_memcmp); sizes are not secret.
  [[nodiscard]] bool Equals(std::span<const std::uint8_t> other) const;

 private:
  void Release();
  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t mapped_ = 0;
  bool locked_ = false;
};

// Process hardening for anything that holds keys: no core dumps
// (RLIMIT_CORE 0) and not ptrace-attachable by same-uid processes
// (PR_SET_DUMPABLE 0). Call early in main() of key-holding tools.
[[nodiscard]] Status HardenKeyHoldingProcess();

}  // namespace cordon
