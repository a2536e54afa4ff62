#include "cordon/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>
#include <utility>

namespace cordon {
namespace {

std::size_t PageSize() {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t PageRound(std::size_t size) { return (size + PageSize() - 1) / PageSize() * PageSize(); }

// Released single pages that were locked, kept for the next SecretBytes of at
// most a page: taking one costs no system call (a fresh one costs four: mmap,
// mlock, two madvise; returning one two: munlock, munmap). A kept page stays
// locked, out of core dumps and wiped on fork, and holds only zeros (it is
// cleansed before it comes here). A forked child forgets the pool: its copies
// of the pages are neither locked nor, with MADV_WIPEONFORK, anything but zero.
class PagePool final {
 public:
  static PagePool& Get() {
    static PagePool* const pool = [] {
      auto* p = new PagePool;  // never destroyed: SecretBytes may be released during exit
      (void)::pthread_atfork(nullptr, nullptr, [] { PagePool::Get().ForgetInChild(); });
      return p;
    }();
    return *pool;
  }
  void* Take() {
    Lock();
    void* page = count_ > 0 ? pages_[--count_] : nullptr;
    busy_.clear(std::memory_order_release);
    return page;
  }
  bool Give(void* page) {
    Lock();
    const bool kept = count_ < pages_.size();
    if (kept) pages_[count_++] = page;
    busy_.clear(std::memory_order_release);
    return kept;
  }

 private:
  void Lock() {
    while (busy_.test_and_set(std::memory_order_acquire)) std::this_thread::yield();  // held for a few instructions
  }
  void ForgetInChild() {  // the child has one thread: no lock to take
    count_ = 0;
    busy_.clear();
  }
  std::atomic_flag busy_;
  std::array<void*, 64> pages_{};
  std::size_t count_ = 0;
};

}  // namespace

SecretBytes::SecretBytes(std::size_t size) : size_(size) {
  if (size == 0) return;
  mapped_ = PageRound(size);
  if (mapped_ == PageSize()) {
    if (void* page = PagePool::Get().Take()) {
      data_ = static_cast<std::uint8_t*>(page);
      locked_ = true;
      return;
    }
  }
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
  if (!(locked_ && mapped_ == PageSize() && PagePool::Get().Give(data_))) {
    if (locked_) ::munlock(data_, mapped_);
    ::munmap(data_, mapped_);
  }
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
