#include "local/local_keyring.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>

#include "cordon/hex.h"
#include "cordon/file_io.h"
#include "cordon/key_ref.h"
#include "cordon/unique_fd.h"

namespace cordon::kms {
namespace {

constexpr std::string_view kAdapter = "local";
constexpr std::string_view kMagicLine = "cordon-local-keyring v1";
constexpr std::size_t kKeyIdBytes = 8;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kBlobBytes = kKeyIdBytes + kNonceBytes + kDekBytes + kTagBytes;
constexpr std::uint64_t kMaxKeyFileBytes = 1 << 20;

struct KekVersion {
  std::uint32_t version = 0;
  std::int64_t created = 0;
  std::array<std::uint8_t, kKeyIdBytes> key_id{};
  SecretBytes kek;
};

struct KeyFile {
  std::string name;
  std::int64_t created = 0;
  bool disabled = false;
  std::vector<KekVersion> versions;
  std::vector<std::uint32_t> retired;  // versions disabled one by one (DisableVersion)
};

// What identifies one state of a key file: a change through Cordon (temp + rename)
// gives a new inode; an edit in place changes size or mtime/ctime.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtim{};
  timespec ctim{};

  static FileIdentity Of(const struct stat& st) {
    return {st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
  }
  bool operator==(const FileIdentity& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtim.tv_sec == o.mtim.tv_sec &&
           mtim.tv_nsec == o.mtim.tv_nsec && ctim.tv_sec == o.ctim.tv_sec &&
           ctim.tv_nsec == o.ctim.tv_nsec;
  }
};

// A parsed key file may be reused only once its timestamps lie clearly before the
// moment it was read (git's "racily clean" rule): file times come from a coarse
// clock (a jiffy), or whole seconds on file systems without nanosecond times, so a
// second in-place edit inside the same tick could otherwise keep every stat field.
// Any edit after the read then carries a later time, hence another identity.
bool SettledBefore(const FileIdentity& id, const timespec& read_at) {
  const bool whole_seconds = id.mtim.tv_nsec == 0 && id.ctim.tv_nsec == 0;
  const std::int64_t margin_ns = whole_seconds ? 2'000'000'000 : 100'000'000;
  const auto ns = [](const timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  return std::max(ns(id.mtim), ns(id.ctim)) < ns(read_at) - margin_ns;
}

// A std::string that is cleansed when it goes out of scope (file text with KEKs in hex).
struct CleansedString {
  std::string text;
  ~CleansedString() { OPENSSL_cleanse(text.data(), text.size()); }
};


bool Unhex(std::string_view hex, std::span<std::uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> words;
  while (!line.empty()) {
    const std::size_t space = line.find(' ');
    words.push_back(line.substr(0, space));
    if (space == std::string_view::npos) break;
    line.remove_prefix(space + 1);
  }
  return words;
}

template <class T>
bool ParseNumber(std::string_view text, T& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

Status ParseVersionLine(const std::vector<std::string_view>& w, KeyFile& key) {
  KekVersion v;
  if (w.size() != 5 || !ParseNumber(w[1], v.version) || v.version == 0 ||
      !ParseNumber(w[2], v.created) || !Unhex(w[3], v.key_id)) {
    return Fail(Errc::kInvalidData, "malformed version line");
  }
  if (!key.versions.empty() && key.versions.back().version >= v.version) {
    return Fail(Errc::kInvalidData, "versions are not in ascending order");
  }
  v.kek = SecretBytes(kDekBytes);
  if (!Unhex(w[4], v.kek.span())) return Fail(Errc::kInvalidData, "malformed KEK");
  key.versions.push_back(std::move(v));
  return {};
}

Result<KeyFile> ParseKeyFile(std::string_view text) {
  KeyFile key;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    const auto fail = [&](std::string what) {
      return Fail(Errc::kInvalidData, "line " + std::to_string(line_no) + ": " + what);
    };
    if (line_no == 1) {
      if (line != kMagicLine) return fail("not a cordon local keyring file");
      continue;
    }
    const auto w = Split(line);
    if (w.empty()) return fail("empty line");
    if (w[0] == "name" && w.size() == 2) key.name = std::string(w[1]);
    else if (w[0] == "created" && w.size() == 2 && ParseNumber(w[1], key.created)) {}
    else if (w[0] == "disabled" && w.size() == 2 && (w[1] == "0" || w[1] == "1")) key.disabled = w[1] == "1";
    else if (std::uint32_t n = 0; w[0] == "retired" && w.size() == 2 && ParseNumber(w[1], n)) key.retired.push_back(n);
    else if (w[0] == "version") {
      if (auto ok = ParseVersionLine(w, key); !ok) return fail(ok.error().message);
    } else {
      return fail("unexpected '" + std::string(w[0]) + "'");
    }
  }
  if (key.name.empty() || key.versions.empty()) {
    return Fail(Errc::kInvalidData, "incomplete key file (no name or no version)");
  }
  return key;
}

void Render(const KeyFile& key, CleansedString& out) {
  out.text.reserve(256 + key.versions.size() * 128);  // no reallocation: no stray copies
  out.text += kMagicLine;
  out.text += "\nname " + key.name + "\ncreated " + std::to_string(key.created) + "\ndisabled " +
              (key.disabled ? "1" : "0") + "\n";
  for (const std::uint32_t n : key.retired) out.text += "retired " + std::to_string(n) + "\n";
  for (const KekVersion& v : key.versions) {
    out.text += "version " + std::to_string(v.version) + " " + std::to_string(v.created) + " " +
                HexEncode(v.key_id) + " ";
    for (std::uint8_t b : v.kek.span()) {
      static constexpr char kDigits[] = "0123456789abcdef";
      out.text.push_back(kDigits[b >> 4]);
      out.text.push_back(kDigits[b & 15]);
    }
    out.text += "\n";
  }
}

Status CheckPrivate(const struct stat& st, const std::string& path, bool dir) {
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Fail(Errc::kKmsUnavailable, path + ": not a " + (dir ? "directory" : "regular file"));
  }
  if (st.st_uid != ::geteuid()) {
    return Fail(Errc::kPermissionDenied, path + ": owned by uid " + std::to_string(st.st_uid) +
                                             ", not by this user (uid " +
                                             std::to_string(::geteuid()) + ")");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Fail(Errc::kPermissionDenied, path + ": mode " + mode + " lets others in; must be " +
                                             (dir ? "0700" : "0600"));
  }
  return {};
}

std::int64_t Now() { return static_cast<std::int64_t>(::time(nullptr)); }

KeyInfo InfoOf(const KeyFile& key) {
  KeyInfo info{std::string(kAdapter), key.name, {}, key.disabled, key.created};
  for (const KekVersion& v : key.versions) info.versions.push_back(v.version);
  return info;
}

Result<KekVersion> NewVersion(std::uint32_t number) {
  KekVersion v;
  v.version = number;
  v.created = Now();
  if (RAND_bytes(v.key_id.data(), static_cast<int>(v.key_id.size())) != 1) {
    return Fail(Errc::kInternal, "RAND_bytes failed");
  }
  auto kek = SecretBytes::Random(kDekBytes);
  if (!kek) return std::unexpected(kek.error());
  v.kek = std::move(*kek);
  return v;
}

// One-shot AES-256-GCM; `out` receives ciphertext (encrypt) or plaintext (decrypt).
bool AesGcm(bool encrypt, const SecretBytes& key, std::span<const std::uint8_t> nonce,
            std::span<const std::uint8_t> aad, std::span<const std::uint8_t> in,
            std::uint8_t* out, std::uint8_t* tag) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      &EVP_CIPHER_CTX_free);
  int len = 0;
  if (!ctx || EVP_CipherInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce.data(),
                                encrypt ? 1 : 0) != 1) {
    return false;
  }
  if (EVP_CipherUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_CipherUpdate(ctx.get(), out, &len, in.data(), static_cast<int>(in.size())) != 1) {
    return false;
  }
  if (!encrypt &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    return false;
  }
  if (EVP_CipherFinal_ex(ctx.get(), out + len, &len) != 1) return false;
  return !encrypt ||
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag) == 1;
}

class LocalKeyring final : public KeyManager {
 public:
  explicit LocalKeyring(std::string dir) : dir_(std::move(dir)) {}

  std::string_view adapter() const override { return kAdapter; }

  Result<KeyInfo> Create(std::string_view name) override {
    if (auto ok = CheckName(name); !ok) return std::unexpected(ok.error());
    auto lock = Lock();
    if (!lock) return std::unexpected(lock.error());
    KeyFile key{std::string(name), Now(), false, {}, {}};
    auto v1 = NewVersion(1);
    if (!v1) return std::unexpected(v1.error());
    key.versions.push_back(std::move(*v1));
    if (auto ok = Store(key, Overwrite::kRefuse); !ok) {
      if (ok.error().code == Errc::kAlreadyExists) {
        return Fail(Errc::kAlreadyExists, "key kms://local/" + key.name + " already exists");
      }
      return std::unexpected(ok.error());
    }
    return InfoOf(key);
  }

  Result<std::vector<KeyInfo>> List() override {
    struct DirCloser {
      void operator()(DIR* d) const { ::closedir(d); }
    };
    std::unique_ptr<DIR, DirCloser> dir(::opendir(dir_.c_str()));
    if (!dir) return FailErrno("open keyring " + dir_);
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(dir.get())) {
      std::string_view file = entry->d_name;
      if (!file.ends_with(".key")) continue;
      file.remove_suffix(4);
      if (IsValidKeyName(file)) names.emplace_back(file);
    }
    std::sort(names.begin(), names.end());
    std::vector<KeyInfo> keys;
    for (const std::string& name : names) {
      auto loaded = Load(name);
      if (!loaded) return std::unexpected(loaded.error());
      const KeyFile* key = loaded->get();
      keys.push_back(InfoOf(*key));
    }
    return keys;
  }

  Result<KeyInfo> Describe(std::string_view name) override {
    auto loaded = Load(name);
    if (!loaded) return std::unexpected(loaded.error());
    const KeyFile* key = loaded->get();
    return InfoOf(*key);
  }

  Result<KeyInfo> Rotate(std::string_view name) override {
    auto lock = Lock();
    if (!lock) return std::unexpected(lock.error());
    auto key = ReadKey(name);
    if (!key) return std::unexpected(key.error());
    if (key->disabled) return Disabled(name);
    auto next = NewVersion(key->versions.back().version + 1);
    if (!next) return std::unexpected(next.error());
    key->versions.push_back(std::move(*next));
    if (auto ok = Store(*key, Overwrite::kReplace); !ok) return std::unexpected(ok.error());
    return InfoOf(*key);
  }

  Status Disable(std::string_view name) override {
    auto lock = Lock();
    if (!lock) return std::unexpected(lock.error());
    auto key = ReadKey(name);
    if (!key) return std::unexpected(key.error());
    if (key->disabled) return {};
    key->disabled = true;
    return Store(*key, Overwrite::kReplace);
  }

  Status DisableVersion(std::string_view name, std::uint32_t version) override {
    auto lock = Lock();
    if (!lock) return std::unexpected(lock.error());
    auto key = ReadKey(name);
    if (!key) return std::unexpected(key.error());
    const std::string ref = "kms://local/" + std::string(name);
    if (std::none_of(key->versions.begin(), key->versions.end(), [&](const KekVersion& k) { return k.version == version; })) {
      return Fail(Errc::kKeyUnknown, ref + " has no version " + std::to_string(version));
    }
    if (version == key->versions.back().version) {
      return Fail(Errc::kInvalidArgument, ref + " version " + std::to_string(version) +
                                              " is the current one: rotate first, rewrap, then disable it");
    }
    if (std::find(key->retired.begin(), key->retired.end(), version) != key->retired.end()) return {};
    key->retired.push_back(version);
    return Store(*key, Overwrite::kReplace);
  }

  Result<WrappedKey> Wrap(std::string_view name, const SecretBytes& dek,
                          const WrapContext& context) override {
    if (dek.size() != kDekBytes) return Fail(Errc::kInvalidArgument, "a data key is 32 bytes");
    auto loaded = Load(name);
    if (!loaded) return std::unexpected(loaded.error());
    const KeyFile* key = loaded->get();
    if (key->disabled) return Disabled(name);
    const KekVersion& v = key->versions.back();
    WrappedKey out{v.version, std::vector<std::uint8_t>(kBlobBytes)};
    std::uint8_t* p = out.blob.data();
    std::copy(v.key_id.begin(), v.key_id.end(), p);
    if (RAND_bytes(p + kKeyIdBytes, static_cast<int>(kNonceBytes)) != 1) {
      return Fail(Errc::kInternal, "RAND_bytes failed");
    }
    const auto aad = WrapAad(kAdapter, name, v.version, context);
    if (!aad) return std::unexpected(aad.error());
    if (!AesGcm(true, v.kek, {p + kKeyIdBytes, kNonceBytes}, *aad, dek.span(),
                p + kKeyIdBytes + kNonceBytes, p + kKeyIdBytes + kNonceBytes + kDekBytes)) {
      return Fail(Errc::kInternal, "AES-256-GCM wrap failed");
    }
    return out;
  }

  Result<SecretBytes> Unwrap(std::string_view name, std::uint32_t version,
                             std::span<const std::uint8_t> blob,
                             const WrapContext& context) override {
    auto loaded = Load(name);
    if (!loaded) return std::unexpected(loaded.error());
    const KeyFile* key = loaded->get();
    const std::string ref = "kms://local/" + std::string(name);
    if (key->disabled) return Disabled(name);
    const auto v = std::find_if(key->versions.begin(), key->versions.end(),
                                [&](const KekVersion& k) { return k.version == version; });
    if (std::find(key->retired.begin(), key->retired.end(), version) != key->retired.end()) {
      return Fail(Errc::kKeyDisabled, ref + " version " + std::to_string(version) +
                                          " is disabled (retired after a rotation): unwrap is refused");
    }
    if (v == key->versions.end()) {
      return Fail(Errc::kKeyUnknown, ref + " has no version " + std::to_string(version) +
                                         " (it has 1.." + std::to_string(key->versions.back().version) + ")");
    }
    if (blob.size() != kBlobBytes) {
      return Fail(Errc::kTampered, "wrapped data key for " + ref + " has " +
                                       std::to_string(blob.size()) + " bytes, expected " +
                                       std::to_string(kBlobBytes));
    }
    if (CRYPTO_memcmp(blob.data(), v->key_id.data(), kKeyIdBytes) != 0) {
      return Fail(Errc::kWrongKey, "the data key was wrapped by other key material than " + ref +
                                       " version " + std::to_string(version) +
                                       " in keyring " + dir_ + " (a re-created key or another keyring?)");
    }
    const auto aad = WrapAad(kAdapter, name, version, context);
    if (!aad) return std::unexpected(aad.error());
    SecretBytes dek(kDekBytes);
    const std::uint8_t* p = blob.data() + kKeyIdBytes;
    std::array<std::uint8_t, kTagBytes> tag{};
    std::copy(p + kNonceBytes + kDekBytes, p + kNonceBytes + kDekBytes + kTagBytes, tag.begin());
    if (!AesGcm(false, v->kek, {p, kNonceBytes}, *aad, {p + kNonceBytes, kDekBytes}, dek.data(),
                tag.data())) {
      return Fail(Errc::kTampered, "unwrapping the data key under " + ref + " version " +
                                       std::to_string(version) +
                                       " failed authentication: the wrapped key, its dataset or "
                                       "job binding was altered");
    }
    return dek;
  }

 private:
  static std::unexpected<Error> Disabled(std::string_view name) {
    return Fail(Errc::kKeyDisabled, "key kms://local/" + std::string(name) +
                                        " is disabled: wrap and unwrap are refused");
  }

  static Status CheckName(std::string_view name) {
    if (!IsValidKeyName(name)) {
      return Fail(Errc::kInvalidArgument, "key name '" + std::string(name) +
                                              "' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$");
    }
    return {};
  }

  std::string PathOf(std::string_view name) const { return dir_ + "/" + std::string(name) + ".key"; }

  Result<UniqueFd> Lock() {
    const std::string path = dir_ + "/.lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return FailErrno("open " + path);
    if (RetryEintr([&] { return ::flock(fd.get(), LOCK_EX); }) != 0) return FailErrno("flock " + path);
    return fd;
  }

  // The key file's lstat, refused unless it is a private regular file of ours.
  Result<struct stat> StatKey(std::string_view name) const {
    const std::string path = PathOf(name);
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) {
        return Fail(Errc::kKeyUnknown, "no key kms://local/" + std::string(name) + " in keyring " +
                                           dir_ + " (create it with `cordon keys create " +
                                           std::string(name) + "`)");
      }
      return FailErrno(path);
    }
    if (auto ok = CheckPrivate(st, path, false); !ok) return std::unexpected(ok.error());
    return st;
  }

  // Reads and parses the key file afresh (mutations, under the keyring lock).
  Result<KeyFile> ReadKey(std::string_view name) const {
    if (auto ok = CheckName(name); !ok) return std::unexpected(ok.error());
    if (auto st = StatKey(name); !st) return std::unexpected(st.error());
    const std::string path = PathOf(name);
    auto text = ReadSecretFile(path, kMaxKeyFileBytes);  // locked, cleansed: it holds every KEK version
    if (!text) return std::unexpected(text.error());
    auto key = ParseKeyFile({reinterpret_cast<const char*>(text->data()), text->size()});
    if (!key) return std::unexpected(WithContext(key.error(), path));
    if (key->name != name) {
      return Fail(Errc::kInvalidData, path + ": holds key '" + key->name + "', not '" + std::string(name) + "'");
    }
    return key;
  }

  // The parsed key for reads (wrap, unwrap, describe, list): one lstat per call; the
  // file is read and parsed again only when its identity (device, inode, size, mtime,
  // ctime) differs from the cached one, so a rotate or disable by another process is
  // seen at the next call. The cache holds the KEKs in SecretBytes (locked, cleansed
  // when the last reference goes) and dies with this KeyManager.
  Result<std::shared_ptr<const KeyFile>> Load(std::string_view name) {
    if (auto ok = CheckName(name); !ok) return std::unexpected(ok.error());
    auto before = StatKey(name);
    if (!before) {
      Forget(name);
      return std::unexpected(before.error());
    }
    const FileIdentity id = FileIdentity::Of(*before);
    {
      std::lock_guard guard(cache_mutex_);
      if (const auto it = cache_.find(name); it != cache_.end() && it->second.id == id) {
        return it->second.key;
      }
    }
    timespec read_at{};
    ::clock_gettime(CLOCK_REALTIME, &read_at);
    auto key = ReadKey(name);
    if (!key) {
      Forget(name);
      return std::unexpected(key.error());
    }
    auto shared = std::make_shared<const KeyFile>(std::move(*key));
    // Cache only what was read between two identical stats of a settled file: the
    // text then belongs to that identity, and any later change will alter it.
    auto after = StatKey(name);
    std::lock_guard guard(cache_mutex_);
    if (after && FileIdentity::Of(*after) == id && SettledBefore(id, read_at)) {
      cache_.insert_or_assign(std::string(name), CachedKey{id, shared});
    } else {
      cache_.erase(std::string(name));
    }
    return shared;
  }

  void Forget(std::string_view name) {
    std::lock_guard guard(cache_mutex_);
    cache_.erase(std::string(name));
  }

  Status Store(const KeyFile& key, Overwrite overwrite) {
    Forget(key.name);  // the old versions' KEKs leave this process now, not at the next call
    CleansedString text;
    Render(key, text);
    return WriteFileAtomic(PathOf(key.name), text.text, 0600, overwrite);
  }

  struct CachedKey {
    FileIdentity id;
    std::shared_ptr<const KeyFile> key;
  };

  std::string dir_;
  std::mutex cache_mutex_;
  std::map<std::string, CachedKey, std::less<>> cache_;
};

}  // namespace

Result<std::unique_ptr<KeyManager>> OpenLocalKeyring(const std::string& dir) {
  auto made = MakeDir(dir, 0700);
  if (!made) return std::unexpected(WithContext(made.error(), "local keyring"));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return FailErrno(dir);
  if (auto ok = CheckPrivate(st, dir, true); !ok) {
    return std::unexpected(WithContext(ok.error(), "local keyring"));
  }
  return std::make_unique<LocalKeyring>(dir);
}

}  // namespace cordon::kms
