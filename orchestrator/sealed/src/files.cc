// File-level seal / unseal / rewrap: where output files appear atomically.
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "cordon/file_io.h"
#include "cordon/sha256.h"
#include "cordon/unique_fd.h"
#include "format.h"

namespace cordon::sealed {
namespace {

std::string DirOf(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string RandomSuffix() {
  std::uint8_t r[8];
  (void)RAND_bytes(r, sizeof r);
  char buf[17];
  for (int i = 0; i < 8; ++i) std::snprintf(buf + 2 * i, 3, "%02x", r[i]);
  return buf;
}

std::string TempBeside(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string dir = DirOf(path);
  return (dir == "/" ? "" : dir) + "/." + base + ".cordon-tmp." + RandomSuffix();
}

// An output file that exists under its name only after Commit(). Unnamed
// (O_TMPFILE) where the file system allows, else a dot-temp file beside it
// that the destructor unlinks; either way a failure leaves nothing behind
// (and with O_TMPFILE not even a crash does).
class PendingFile final {
 public:
  static Result<PendingFile> Create(const std::string& path, mode_t mode) {
    PendingFile f;
    f.path_ = path;
    f.fd_.reset(::open(DirOf(path).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, mode));
    if (!f.fd_) {
      if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return FailErrno("create " + path);
      f.temp_ = TempBeside(path);
      f.fd_.reset(::open(f.temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
      if (!f.fd_) return FailErrno("create " + f.temp_);
    }
    if (::fchmod(f.fd_.get(), mode) != 0) return FailErrno("chmod " + path);
    return f;
  }
  PendingFile() = default;
  PendingFile(PendingFile&& o) noexcept
      : path_(std::move(o.path_)), temp_(std::exchange(o.temp_, {})), fd_(std::move(o.fd_)) {}
  PendingFile& operator=(PendingFile&&) = delete;
  ~PendingFile() {
    if (!temp_.empty()) ::unlink(temp_.c_str());
  }

  [[nodiscard]] int fd() const { return fd_.get(); }

  Status Commit(Replace replace) {
    if (::fsync(fd_.get()) != 0) return FailErrno("fsync " + path_);
    if (temp_.empty()) {
      if (auto ok = LinkUnnamed(replace); !ok) return ok;
    } else if (replace == Replace::kReplace) {
      if (::rename(temp_.c_str(), path_.c_str()) != 0) return FailErrno("rename to " + path_);
      temp_.clear();
    } else {
      if (::link(temp_.c_str(), path_.c_str()) != 0) return FailErrno(path_);
    }
    fd_.reset();
    return FsyncDir(DirOf(path_));
  }

 private:
  Status LinkTo(const std::string& name) {
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_.get());
    if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return {};
    if (errno == EEXIST) return FailErrno(name);
    if (::linkat(fd_.get(), "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH) == 0) return {};
    return FailErrno("link " + name);
  }

  Status LinkUnnamed(Replace replace) {
    if (replace == Replace::kRefuse) return LinkTo(path_);
    temp_ = TempBeside(path_);
    if (auto ok = LinkTo(temp_); !ok) {
      temp_.clear();
      return ok;
    }
    if (::rename(temp_.c_str(), path_.c_str()) != 0) return FailErrno("rename to " + path_);
    temp_.clear();
    return {};
  }

  std::string path_;
  std::string temp_;
  UniqueFd fd_;
};

Status RefuseExisting(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    return Fail(Errc::kAlreadyExists, path + " exists (use --force to replace it)");
  }
  return {};
}

Result<UniqueFd> OpenInput(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return FailErrno(path);
  return fd;
}

// Copies [offset, EOF) of `in` to the current position of `out`, in the kernel where possible.
Status CopyRest(int in, std::uint64_t offset, int out) {
  auto off = static_cast<loff_t>(offset);
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::copy_file_range(in, &off, out, nullptr, 1u << 30, 0); });
    if (n == 0) return {};
    if (n > 0) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return FailErrno("copy chunks");
    break;
  }
  std::vector<std::uint8_t> buf(1u << 20);
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::pread(in, buf.data(), buf.size(), off); });
    if (n < 0) return FailErrno("read chunks");
    if (n == 0) return {};
    if (auto ok = WriteAll(out, {buf.data(), static_cast<std::size_t>(n)}); !ok) return ok;
    off += n;
  }
}

Result<kms::KeyManager*> Manager(const KeyManagers& kms, std::string_view adapter) {
  if (!kms.get) return Fail(Errc::kInternal, "no key managers");
  return kms.get(adapter);
}

}  // namespace

KeyManagers CachedKeyManagers(kms::Options options) {
  auto cache = std::make_shared<std::map<std::string, std::unique_ptr<kms::KeyManager>, std::less<>>>();
  return KeyManagers{[cache, options = std::move(options)](std::string_view adapter) -> Result<kms::KeyManager*> {
    if (auto it = cache->find(adapter); it != cache->end()) return it->second.get();
    auto km = kms::OpenKeyManager(adapter, options);
    if (!km) return std::unexpected(km.error());
    kms::KeyManager* raw = km->get();
    cache->emplace(std::string(adapter), std::move(*km));
    return raw;
  }};
}

Result<Report> SealFile(const std::string& in, const std::string& out, const KeyManagers& kms,
                        const SealOptions& options) {
  if (auto ok = CheckDatasetName(options.dataset); !ok) return std::unexpected(ok.error());
  if (options.chunk_bytes < kMinChunkBytes || options.chunk_bytes > kMaxChunkBytes) {
    return Fail(Errc::kInvalidArgument, "chunk size must be 16 bytes to 64 MiB");
  }
  if (auto ok = RefuseExisting(out); !ok) return std::unexpected(ok.error());
  auto km = Manager(kms, options.key.adapter);
  if (!km) return std::unexpected(km.error());
  UniqueFd owned;
  int in_fd = STDIN_FILENO;
  if (in != "-") {
    auto fd = OpenInput(in);
    if (!fd) return std::unexpected(fd.error());
    owned = std::move(*fd);
    in_fd = owned.get();
  }
  auto pending = PendingFile::Create(out, 0600);
  if (!pending) return std::unexpected(pending.error());
  auto report = SealStream(in_fd, pending->fd(), **km, options);
  if (!report) return report;
  if (auto ok = pending->Commit(Replace::kRefuse); !ok) return std::unexpected(ok.error());
  return report;
}

Result<Report> UnsealFile(const std::string& in, const std::string& out, const KeyManagers& kms,
                          Replace replace, const Progress& progress) {
  if (replace == Replace::kRefuse && out != "-") {
    if (auto ok = RefuseExisting(out); !ok) return std::unexpected(ok.error());
  }
  auto fd = OpenInput(in);
  if (!fd) return std::unexpected(fd.error());
  auto info = OpenSealed(fd->get());
  if (!info) return std::unexpected(WithContext(info.error(), in));
  auto km = Manager(kms, info->header.key.adapter);
  if (!km) return std::unexpected(km.error());
  auto dek = UnwrapDataKey(info->header, **km);
  if (!dek) return std::unexpected(dek.error());
  if (out == "-") {
    auto verified = UnsealWithKey(fd->get(), info->header, *dek, [](auto) -> Status { return {}; }, progress);
    if (!verified) return verified;
    return UnsealWithKey(fd->get(), info->header, *dek,
                         [](std::span<const std::uint8_t> p) { return WriteAll(STDOUT_FILENO, p); });
  }
  auto pending = PendingFile::Create(out, 0600);
  if (!pending) return std::unexpected(pending.error());
  const int out_fd = pending->fd();
  auto report = UnsealWithKey(fd->get(), info->header, *dek,
                              [out_fd](std::span<const std::uint8_t> p) { return WriteAll(out_fd, p); },
                              progress);
  if (!report) return report;
  if (auto ok = pending->Commit(replace); !ok) return std::unexpected(ok.error());
  return report;
}

namespace {

// Writes `header` then FILE's chunk bytes (from `old_header_bytes` on,
// copied verbatim) to a temp file beside FILE with FILE's owner and mode
// (fsync'ed only when `sync`), and returns the temp's name and its sha256.
Result<std::pair<std::string, std::string>> WriteReplacement(const std::string& file, int fd, const struct stat& st,
                                                             std::uint64_t old_header_bytes,
                                                             std::span<const std::uint8_t> header, bool sync) {
  const mode_t mode = st.st_mode;
  const std::string temp = TempBeside(file);
  UniqueFd out(::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return FailErrno("create " + temp);
  const auto fail = [&](Error e) -> std::unexpected<Error> {
    ::unlink(temp.c_str());
    return std::unexpected(std::move(e));
  };
  // Root rewrapping another user's file (`cordon rewrap --all`) keeps its owner.
  if (::geteuid() == 0 && ::fchown(out.get(), st.st_uid, st.st_gid) != 0) return fail(FailErrno("chown " + temp).error());
  if (::fchmod(out.get(), mode & 07777) != 0) return fail(FailErrno("chmod " + temp).error());
  if (auto ok = WriteAll(out.get(), header); !ok) return fail(ok.error());
  if (auto ok = CopyRest(fd, old_header_bytes, out.get()); !ok) return fail(ok.error());
  auto sha = Sha256Fd(out.get());
  if (!sha) return fail(WithContext(sha.error(), temp));
  if (sync && ::fsync(out.get()) != 0) return fail(FailErrno("fsync " + temp).error());
  return std::pair{temp, *sha};
}

// `temp` (synced) renamed over `file`, then the directory synced.
Status ReplaceNow(const std::string& temp, const std::string& file) {
  if (::rename(temp.c_str(), file.c_str()) != 0) {
    const Status st = FailErrno("rename to " + file);
    ::unlink(temp.c_str());
    return st;
  }
  return FsyncDir(DirOf(file));
}

// The header re-wrapped under `target`'s current version (same DEK, salt, chunks).
Result<Header> Rewrapped(Header h, const SecretBytes& dek, kms::KeyManager& km, const KeyRef& target) {
  auto wrapped = km.Wrap(target.name, dek, {h.dataset, h.job});
  if (!wrapped) return std::unexpected(wrapped.error());
  h.key = target;
  h.kek_version = wrapped->version;
  h.wrapped_dek = std::move(wrapped->blob);
  auto keys = internal::DeriveKeys(dek, h);
  if (!keys) return std::unexpected(keys.error());
  auto mac = internal::HeaderMac(*keys, h);
  if (!mac) return std::unexpected(mac.error());
  h.mac = *mac;
  return h;
}

// FILE (open at `fd`) parsed, its DEK unwrapped and its header re-wrapped
// under `new_key` (default: its own key) at the newest version.
struct RewrappedHeader {
  SealedInfo info;
  std::vector<std::uint8_t> header;  // encoded
  Report report;                     // sealed_bytes: with the new header; sha256 empty
};

Result<RewrappedHeader> RewrapHeader(const std::string& file, int fd, const KeyManagers& kms,
                               const std::optional<KeyRef>& new_key) {
  auto info = OpenSealed(fd);
  if (!info) return std::unexpected(WithContext(info.error(), file));
  const Header& old = info->header;
  auto old_km = Manager(kms, old.key.adapter);
  if (!old_km) return std::unexpected(old_km.error());
  auto dek = UnwrapDataKey(old, **old_km);
  if (!dek) return std::unexpected(dek.error());
  const KeyRef target = new_key.value_or(old.key);
  auto new_km = Manager(kms, target.adapter);
  if (!new_km) return std::unexpected(new_km.error());
  auto header = Rewrapped(old, *dek, **new_km, target);
  if (!header) return std::unexpected(header.error());
  RewrappedHeader out{std::move(*info), internal::EncodeHeader(*header), {}};
  const Header& h = out.info.header;
  out.report = Report{target, header->kek_version, h.dataset, h.job, h.chunk_bytes, out.info.plaintext_bytes,
                      out.info.sealed_bytes - h.header_bytes + out.header.size(), out.info.chunks, {}, h.key,
                      h.kek_version};
  return out;
}

Result<PendingRewrap> Prepare(const std::string& file, const KeyManagers& kms, const std::optional<KeyRef>& new_key,
                              bool sync) {
  auto fd = OpenInput(file);
  if (!fd) return std::unexpected(fd.error());
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return FailErrno(file);
  auto r = RewrapHeader(file, fd->get(), kms, new_key);
  if (!r) return std::unexpected(r.error());
  auto written = WriteReplacement(file, fd->get(), st, r->info.header.header_bytes, r->header, sync);
  if (!written) return std::unexpected(written.error());
  r->report.sha256 = written->second;
  return PendingRewrap{file, written->first, std::move(r->report)};
}

// The first out.size() bytes of FILE (its header).
Status ReadHeaderBytes(int fd, std::span<std::uint8_t> out, const std::string& file) {
  auto got = PreadFull(fd, out, 0);
  if (!got) return std::unexpected(WithContext(got.error(), file));
  if (*got != out.size()) return Fail(Errc::kInvalidData, file + ": shorter than its header");
  return {};
}

Status WriteHeaderBytes(int fd, std::span<const std::uint8_t> bytes, const std::string& file) {
  if (auto ok = PwriteAll(fd, bytes, 0); !ok) return std::unexpected(WithContext(ok.error(), "the header of " + file));
  return {};
}

}  // namespace

Result<Report> RewrapFile(const std::string& file, const KeyManagers& kms, const std::optional<KeyRef>& new_key) {
  auto pending = Prepare(file, kms, new_key, true);
  if (!pending) return std::unexpected(pending.error());
  if (auto ok = ReplaceNow(pending->temp, file); !ok) return std::unexpected(ok.error());
  return pending->report;
}

Result<PendingRewrap> PrepareRewrap(const std::string& file, const KeyManagers& kms,
                                    const std::optional<KeyRef>& new_key) {
  return Prepare(file, kms, new_key, false);
}

std::vector<Status> CommitRewraps(std::span<const PendingRewrap> batch) {
  std::vector<Status> result(batch.size());
  // 1. The temps' data on disk: one syncfs per file system, not one fsync per file.
  std::map<std::string, UniqueFd> dirs;
  std::map<dev_t, Status> synced;
  for (const PendingRewrap& p : batch) {
    const std::string dir = DirOf(p.file);
    if (dirs.contains(dir)) continue;
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    if (!dfd || ::fstat(dfd.get(), &st) != 0) {
      dirs.emplace(dir, UniqueFd());
      continue;
    }
    if (!synced.contains(st.st_dev)) {
      synced.emplace(st.st_dev, ::syncfs(dfd.get()) == 0 ? Status{} : Status(FailErrno("syncfs " + dir)));
    }
    if (!synced.at(st.st_dev)) {
      dirs.emplace(dir, UniqueFd());  // not synced: its files are left as they were
      continue;
    }
    dirs.emplace(dir, std::move(dfd));
  }
  // 2. Each temp over its file (atomic: a crash leaves the old file or the new one).
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const PendingRewrap& p = batch[i];
    if (!dirs.at(DirOf(p.file))) {
      result[i] = Fail(Errc::kIo, "cannot sync the file system of " + p.file + " before replacing it");
    } else if (::rename(p.temp.c_str(), p.file.c_str()) != 0) {
      result[i] = FailErrno("rename to " + p.file);
    }
    if (!result[i]) ::unlink(p.temp.c_str());
  }
  // 3. The renames on disk: each directory once. A file whose directory did
  // not sync is rewrapped but reported failed (its journal entry stays open).
  std::map<std::string, Status> dir_synced;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!result[i]) continue;
    const std::string dir = DirOf(batch[i].file);
    if (!dir_synced.contains(dir)) {
      dir_synced.emplace(dir, ::fsync(dirs.at(dir).get()) == 0 ? Status{} : Status(FailErrno("fsync " + dir)));
    }
    if (!dir_synced.at(dir)) result[i] = dir_synced.at(dir);
  }
  return result;
}

Result<HeaderRewrite> PrepareHeaderRewrite(const std::string& file, const KeyManagers& kms,
                                           const std::optional<KeyRef>& new_key) {
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return FailErrno(file);
  auto r = RewrapHeader(file, fd.get(), kms, new_key);
  if (!r) return std::unexpected(r.error());
  const std::size_t size = r->info.header.header_bytes;
  if (r->header.size() != size || size > kMaxHeaderBytes) {
    return Fail(Errc::kUnsupported, file + ": the rewrapped header has another length");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno(file);
  HeaderRewrite out{file, std::move(fd), std::vector<std::uint8_t>(size), std::move(r->header), std::move(r->report),
                    static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  if (auto ok = ReadHeaderBytes(out.fd.get(), out.before, file); !ok) return std::unexpected(ok.error());
  if (out.before == out.after) return Fail(Errc::kInternal, file + ": the rewrapped header is the old one");
  return out;
}

std::vector<Status> WriteHeaders(std::span<const HeaderRewrite> batch) {
  std::vector<Status> result(batch.size());
  std::map<std::uint64_t, int> devices;  // one file of each file system (HeaderRewrite::dev)
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const HeaderRewrite& h = batch[i];
    // Exclusive against OpenSealed's shared lock: no reader sees half a header.
    if (RetryEintr([&] { return ::flock(h.fd.get(), LOCK_EX); }) != 0) {
      result[i] = FailErrno("lock " + h.file);
      continue;
    }
    result[i] = WriteHeaderBytes(h.fd.get(), h.after, h.file);
    (void)::flock(h.fd.get(), LOCK_UN);
    if (result[i]) devices.emplace(h.dev, h.fd.get());
  }
  std::map<std::uint64_t, bool> synced;
  for (const auto& [dev, fd] : devices) synced.emplace(dev, ::syncfs(fd) == 0);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (result[i] && !synced[batch[i].dev]) {
      result[i] = Fail(Errc::kIo, "cannot sync the file system of " + batch[i].file + " (its new header may not be on disk)");
    }
  }
  return result;
}

Result<bool> RestoreHeader(const std::string& file, std::uint64_t dev, std::uint64_t ino,
                           std::span<const std::uint8_t> before, std::span<const std::uint8_t> after) {
  if (before.size() != after.size() || before.empty() || before.size() > kMaxHeaderBytes) {
    return Fail(Errc::kInvalidArgument, file + ": bad journaled header");
  }
  UniqueFd fd(::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return errno == ENOENT ? Fail(Errc::kNotFound, file + " is gone") : FailErrno(file);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_dev) != dev ||
      static_cast<std::uint64_t>(st.st_ino) != ino) {
    return Fail(Errc::kNotFound, file + " is another file now: its header is left alone");
  }
  std::vector<std::uint8_t> now(before.size());
  if (auto ok = ReadHeaderBytes(fd.get(), now, file); !ok) return std::unexpected(ok.error());
  if (std::equal(now.begin(), now.end(), after.begin())) return true;
  if (std::equal(now.begin(), now.end(), before.begin())) return false;
  if (RetryEintr([&] { return ::flock(fd.get(), LOCK_EX); }) != 0) return FailErrno("lock " + file);
  if (auto ok = WriteHeaderBytes(fd.get(), before, file); !ok) return std::unexpected(ok.error());
  if (::fdatasync(fd.get()) != 0) return FailErrno("fdatasync " + file);
  return false;
}

Result<std::string> Sha256Fd(int fd) {
  Sha256 hash;
  std::vector<std::uint8_t> buf(1u << 20);
  off_t offset = 0;
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::pread(fd, buf.data(), buf.size(), offset); });
    if (n < 0) return FailErrno("read");
    if (n == 0) break;
    if (auto ok = hash.Update({buf.data(), static_cast<std::size_t>(n)}); !ok) return std::unexpected(ok.error());
    offset += n;
  }
  return hash.Finish();
}

std::string Sha256Bytes(std::string_view bytes) {
  auto digest = Sha256Digest(bytes);
  return digest ? *digest : "";  // callers refuse ""
}

Result<std::string> Sha256File(const std::string& path) {
  auto fd = OpenInput(path);
  if (!fd) return std::unexpected(fd.error());
  auto sha = Sha256Fd(fd->get());
  if (!sha) return std::unexpected(WithContext(sha.error(), path));
  return sha;
}

}  // namespace cordon::sealed
