// One pass over a sealed version's plaintext (the registry's profile) and the
// registry's hash key, kept only sealed.
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "cordon/hex.h"
#include "cordon/file_io.h"
#include "cordon/datasets/csv_projection.h"
#include "cordon/datasets/datasets.h"
#include "cordon/unique_fd.h"

namespace cordon::datasets {
namespace {

constexpr const char* kHashKeyDataset = "cordon-registry-hash-key";


// HMAC-SHA256 under the registry's hash key, re-initialised per message.
class Hmac final {
 public:
  explicit Hmac(const SecretBytes& key) {
    mac_.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (mac_) ctx_.reset(EVP_MAC_CTX_new(mac_.get()));
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    ok_ = ctx_ && EVP_MAC_init(ctx_.get(), key.data(), key.size(), params) == 1;
  }
  [[nodiscard]] bool ok() const { return ok_; }
  void Update(const void* data, std::size_t n) {
    ok_ = ok_ && EVP_MAC_update(ctx_.get(), static_cast<const unsigned char*>(data), n) == 1;
  }
  // The MAC so far; the context then starts a new message under the same key.
  bool Final(std::uint8_t (&out)[32]) {
    std::size_t n = 0;
    ok_ = ok_ && EVP_MAC_final(ctx_.get(), out, &n, sizeof out) == 1 && n == 32 &&
          EVP_MAC_init(ctx_.get(), nullptr, 0, nullptr) == 1;
    return ok_;
  }

 private:
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac_{nullptr, &EVP_MAC_free};
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx_{nullptr, &EVP_MAC_CTX_free};
  bool ok_ = false;
};

Result<kms::KeyManager*> ManagerFor(const sealed::KeyManagers& kms, const KeyRef& key) {
  auto km = kms.get(key.adapter);
  if (!km) return std::unexpected(km.error());
  return *km;
}

Result<SecretBytes> ReadHashKey(const std::string& path, const sealed::KeyManagers& kms) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return FailErrno("open " + path);
  auto info = sealed::OpenSealed(fd.get());
  if (!info) return std::unexpected(WithContext(info.error(), path));
  if (info->header.dataset != kHashKeyDataset) return Fail(Errc::kInvalidData, path + ": not the registry's hash key");
  auto km = ManagerFor(kms, info->header.key);
  if (!km) return std::unexpected(km.error());
  auto dek = sealed::UnwrapDataKey(info->header, **km);
  if (!dek) return std::unexpected(WithContext(dek.error(), path));
  SecretBytes key(32);
  std::size_t got = 0;
  auto report = sealed::UnsealWithKey(fd.get(), info->header, *dek, [&](std::span<const std::uint8_t> p) -> Status {
    if (got + p.size() > key.size()) return Fail(Errc::kInvalidData, path + ": longer than a hash key");
    std::copy(p.begin(), p.end(), key.data() + got);
    got += p.size();
    return {};
  });
  if (!report) return std::unexpected(WithContext(report.error(), path));
  if (got != key.size()) return Fail(Errc::kInvalidData, path + ": shorter than a hash key");
  return key;
}

// 32 fresh random bytes, sealed under `key` into `path` (never on disk in the
// clear: they reach the sealer through a pipe). Refuses to replace a key.
Status CreateHashKey(const std::string& path, const sealed::KeyManagers& kms, const KeyRef& key) {
  auto km = ManagerFor(kms, key);
  if (!km) return std::unexpected(km.error());
  auto secret = SecretBytes::Random(32);
  if (!secret) return std::unexpected(secret.error());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return FailErrno("pipe");
  UniqueFd read_end(p[0]), write_end(p[1]);
  if (auto ok = WriteAll(write_end.get(), secret->span()); !ok) return ok;
  write_end.reset();
  const std::string temp = path + ".partial";
  ::unlink(temp.c_str());
  UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return FailErrno("create " + temp);
  sealed::SealOptions options;
  options.key = key;
  options.dataset = kHashKeyDataset;
  auto sealed = sealed::SealStream(read_end.get(), out.get(), **km, options);
  Status st = sealed ? Status{} : Status(std::unexpected(sealed.error()));
  if (st && ::fsync(out.get()) != 0) st = FailErrno("fsync " + temp);
  if (st && ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    st = FailErrno("rename " + temp);
  }
  ::unlink(temp.c_str());
  if (st) st = FsyncDir(path.substr(0, path.rfind('/')));
  return st;
}

}  // namespace

Result<SecretBytes> Registry::HashKey(const sealed::KeyManagers& kms, const KeyRef& key_for_new) {
  const std::string path = HashKeyPath();
  if (::access(path.c_str(), F_OK) != 0) {
    UniqueFd lock(::open((dir_ + "/registry.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!lock || ::flock(lock.get(), LOCK_EX) != 0) return FailErrno("lock the registry");
    if (::access(path.c_str(), F_OK) != 0) {
      if (auto ok = CreateHashKey(path, kms, key_for_new); !ok) {
        return std::unexpected(WithContext(ok.error(), "creating the registry's hash key"));
      }
    }
  }
  return ReadHashKey(path, kms);
}

Result<Profile> ProfileSealed(int fd, const sealed::KeyManagers& kms, const SecretBytes& hash_key, bool row_hashes) {
  auto info = sealed::OpenSealed(fd);
  if (!info) return std::unexpected(info.error());
  auto km = ManagerFor(kms, info->header.key);
  if (!km) return std::unexpected(km.error());
  auto dek = sealed::UnwrapDataKey(info->header, **km);
  if (!dek) return std::unexpected(dek.error());
  Hmac content(hash_key), rows(hash_key);
  if (!content.ok() || !rows.ok()) return Fail(Errc::kInternal, "HMAC-SHA256 unavailable");
  Profile profile;
  std::vector<orchestrator::ColumnAccumulator> columns;
  orchestrator::CsvProjector csv({}, [](std::string_view) { return Status{}; });
  csv.ObserveAll([&](std::span<const std::string_view> fields) -> Status {
    if (columns.size() != fields.size()) columns.assign(fields.size(), orchestrator::ColumnAccumulator(true));
    for (std::size_t i = 0; i < fields.size(); ++i) columns[i].Add(fields[i]);
    if (row_hashes) {
      for (const std::string_view f : fields) {  // length-prefixed: no two rows encode alike
        const std::uint64_t n = f.size();
        rows.Update(&n, sizeof n);
        rows.Update(f.data(), f.size());
      }
      std::uint8_t mac[32];
      if (!rows.Final(mac)) return Fail(Errc::kInternal, "HMAC-SHA256 failed");
      std::uint64_t h = 0;
      for (int i = 0; i < 8; ++i) h = (h << 8) | mac[i];
      profile.row_hashes.push_back(h);
    }
    return {};
  });
  bool csv_ok = true;
  auto report = sealed::UnsealWithKey(fd, info->header, *dek, [&](std::span<const std::uint8_t> p) -> Status {
    content.Update(p.data(), p.size());
    profile.plaintext_bytes += p.size();
    if (csv_ok) {
      if (auto ok = csv.Feed({reinterpret_cast<const char*>(p.data()), p.size()}); !ok) {
        csv_ok = false;
        profile.csv_error = ok.error().message;
      }
    }
    return Status{};
  });
  if (!report) return std::unexpected(report.error());
  if (csv_ok) {
    if (auto ok = csv.Finish(); !ok) {
      csv_ok = false;
      profile.csv_error = ok.error().message;
    }
  }
  std::uint8_t digest[32];
  if (!content.Final(digest)) return Fail(Errc::kInternal, "HMAC-SHA256 failed");
  profile.content_digest = "hmac-sha256:" + HexEncode(std::span<const std::uint8_t>(digest, sizeof digest));
  OPENSSL_cleanse(digest, sizeof digest);
  if (csv_ok) {
    profile.rows = csv.rows() > 0 ? csv.rows() - 1 : 0;
    profile.header = csv.observed_columns();
    orchestrator::Summaries summaries;
    for (std::size_t i = 0; i < profile.header.size(); ++i) {
      summaries[profile.header[i]] = i < columns.size() ? columns[i].Summary() : orchestrator::ColumnSummary{};
    }
    profile.summaries = std::move(summaries);
  } else {
    profile.row_hashes.clear();
  }
  std::sort(profile.row_hashes.begin(), profile.row_hashes.end());
  return profile;
}

}  // namespace cordon::datasets
