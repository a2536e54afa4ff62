#include "cordon/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <utility>

namespace cordon {
namespace {

std::size_t PageRound(std::size_t size) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (size + page - 1) / page * page;
}

}  // namespace

SecretBytes::SecretBytes(std::size_t size) : size_(size) {
  if (size == 0) return;
  mapped_ = PageRound(size);
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<std::uint8_t*>(p);
  locked_ = ::mlock(p, mapped_) == 0;
  (void)::madvise(p, mapped_, MADV_DONTDUMP);
  (void)::madvise(p, mapped_, MADV_WIPEONFORK);
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() {
  if (data_ == nullptr) return;
  OPENSSL_cleanse(data_, mapped_);
  if (locked_) ::munlock(data_, mapped_);
  ::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
  locked_ = false;
}

Result<SecretBytes> SecretBytes::Random(std::size_t size) {
  SecretBytes out(size);
  if (size > 0 && RAND_bytes(out.data_, static_cast<int>(size)) != 1) {
    return Fail(Errc::kInternal, "RAND_bytes failed: the CSPRNG is unavailable");
  }
  return out;
}

SecretBytes SecretBytes::From(std::span<const std::uint8_t> bytes) {
  SecretBytes out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data_, bytes.data(), bytes.size());
  return out;
}

SecretBytes SecretBytes::Copy() const { return From(span()); }

bool SecretBytes::Equals(std::span<const std::uint8_t> other) const {
  if (other.size() != size_) return false;
  return size_ == 0 || CRYPTO_memcmp(data_, other.data(), size_) == 0;
}

Status HardenKeyHoldingProcess() {
  const rlimit zero{0, 0};
  if (::setrlimit(RLIMIT_CORE, &zero) != 0) return FailErrno("setrlimit(RLIMIT_CORE, 0)");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return FailErrno("prctl(PR_SET_DUMPABLE, 0)");
  return {};
}

}  // namespace cordon
