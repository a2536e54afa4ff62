#include "cordon/images/oci_image.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cordon/file_io.h"
#include "cordon/sha256.h"
#include "cordon/unique_fd.h"

namespace cordon::images {
namespace {

using nlohmann::json;

constexpr std::string_view kRefAnnotation = "org.opencontainers.image.ref.name";
constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr std::string_view kWhiteout = ".wh.";
constexpr std::string_view kOpaque = ".wh..wh..opq";
constexpr int kMaxRemoveDepth = 256;
constexpr std::size_t kMaxEnv = 1024;            // image config Env entries kept
constexpr std::size_t kMaxEnvBytes = 32 * 1024;  // one NAME=VALUE

bool IsLayerType(const std::string& t) {
  static const std::set<std::string> kTypes = {
      "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip"};
  return kTypes.contains(t);
}

std::string Short(const std::string& digest) { return digest.substr(0, 19); }

// ---- opening inside the layout: one component at a time, never a symlink ----
bool Permits(const struct stat& st, const std::optional<Reader>& reader, mode_t owner_bit) {
  if (!reader) return true;
  if (st.st_uid == reader->uid) return (st.st_mode & owner_bit) != 0;
  if (std::find(reader->groups.begin(), reader->groups.end(), st.st_gid) != reader->groups.end()) {
    return (st.st_mode & (owner_bit >> 3)) != 0;
  }
  return (st.st_mode & (owner_bit >> 6)) != 0;
}

Result<UniqueFd> OpenInLayout(int layout_fd, const std::vector<std::string>& parts,
                              const std::optional<Reader>& reader) {
  UniqueFd cur;
  int at = layout_fd;
  std::string shown;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    shown += (i ? "/" : "") + parts[i];
    // The file is looked at (O_PATH) before it is opened for reading: opening a device node the
    // layout smuggled in could have side effects even as a read.
    const int flags = O_NOFOLLOW | O_CLOEXEC | (last ? O_PATH : O_RDONLY | O_DIRECTORY);
    UniqueFd next(::openat(at, parts[i].c_str(), flags));
    if (!next) {
      if (errno == ELOOP || (!last && errno == ENOTDIR)) {
        return Fail(Errc::kInvalidData, shown + ": not a plain " + (last ? "file" : "directory") + " (a symlink?)");
      }
      return FailErrno(shown);
    }
    struct stat st {};
    if (::fstat(next.get(), &st) != 0) return FailErrno("fstat " + shown);
    if (last && !S_ISREG(st.st_mode)) return Fail(Errc::kInvalidData, shown + ": not a regular file");
    if (!Permits(st, reader, last ? S_IRUSR : S_IXUSR)) {
      return Fail(Errc::kPermissionDenied, shown + ": the submitter may not " + (last ? "read" : "search") + " it");
    }
    if (last) {
      const std::string self = "/proc/self/fd/" + std::to_string(next.get());
      next.reset(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      if (!next) return FailErrno(shown);
    }
    cur = std::move(next);
    at = cur.get();
  }
  return cur;
}

Result<UniqueFd> OpenBlob(int layout_fd, const std::string& digest, const std::optional<Reader>& reader) {
  if (!IsSha256Digest(digest)) return Fail(Errc::kInvalidData, "digest '" + digest + "' is not sha256:<64 hex>");
  return OpenInLayout(layout_fd, {"blobs", "sha256", digest.substr(7)}, reader);
}

Result<std::string> ReadSmall(int fd, std::uint64_t max, const std::string& what) {
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::read(fd, buf, sizeof buf); });
    if (n < 0) return FailErrno("read " + what);
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max) {
      return Fail(Errc::kInvalidData, what + ": larger than " + std::to_string(max) + " bytes");
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  return text;
}

Result<json> ParseJson(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Fail(Errc::kInvalidData, what + ": not a JSON object");
  return j;
}

// A JSON blob, checked against its descriptor before it is parsed.
Result<json> ReadJsonBlob(int layout_fd, const Descriptor& d, const Limits& limits,
                          const std::optional<Reader>& reader, const std::string& what) {
  const std::string name = what + " " + Short(d.digest);
  if (d.size > limits.max_json_bytes) {
    return Fail(Errc::kInvalidData, name + ": size " + std::to_string(d.size) + " is over the limit of " +
                                        std::to_string(limits.max_json_bytes) + " bytes");
  }
  auto fd = OpenBlob(layout_fd, d.digest, reader);
  if (!fd) return std::unexpected(WithContext(fd.error(), name));
  auto text = ReadSmall(fd->get(), limits.max_json_bytes, name);
  if (!text) return std::unexpected(text.error());
  auto digest = Sha256Digest(*text);
  if (!digest) return std::unexpected(digest.error());
  const std::string& got = *digest;
  if (got != d.digest) return Fail(Errc::kIntegrity, name + ": the blob's sha256 is " + got + ", not its digest");
  if (text->size() != d.size) {
    return Fail(Errc::kIntegrity, name + ": " + std::to_string(text->size()) + " bytes, the descriptor says " +
                                      std::to_string(d.size));
  }
  return ParseJson(*text, name);
}

Result<Descriptor> ReadDescriptor(const json& j, const std::string& what) {
  if (!j.is_object()) return Fail(Errc::kInvalidData, what + ": not a descriptor object");
  Descriptor d;
  const auto mt = j.find("mediaType");
  const auto dg = j.find("digest");
  const auto sz = j.find("size");
  if (mt == j.end() || !mt->is_string() || dg == j.end() || !dg->is_string() || sz == j.end() ||
      !sz->is_number_unsigned()) {
    return Fail(Errc::kInvalidData, what + ": a descriptor needs mediaType, digest and size");
  }
  d.media_type = mt->get<std::string>();
  d.digest = dg->get<std::string>();
  d.size = sz->get<std::uint64_t>();
  if (!IsSha256Digest(d.digest)) {
    return Fail(Errc::kInvalidData, what + ": digest '" + d.digest + "' is not sha256:<64 lowercase hex>");
  }
  return d;
}

std::string HostArch() {
  utsname u{};
  ::uname(&u);
  const std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  return m;
}

// skopeo's oci: transport: no ref -> the only manifest; a ref -> the ref.name annotation.
Result<Descriptor> PickFromIndex(const json& index, std::string_view ref, const std::string& what) {
  const auto m = index.find("manifests");
  if (m == index.end() || !m->is_array()) return Fail(Errc::kInvalidData, what + ": no manifests list");
  if (ref.empty()) {
    if (m->size() != 1) {
      return Fail(Errc::kInvalidData, what + " lists " + std::to_string(m->size()) +
                                          " manifests: name one (oci:PATH:TAG)");
    }
    return ReadDescriptor((*m)[0], what + " manifests[0]");
  }
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& e = (*m)[i];
    if (!e.is_object() || !e.contains("annotations") || !e["annotations"].is_object()) continue;
    const json& a = e["annotations"];
    const auto it = a.find(std::string(kRefAnnotation));
    if (it != a.end() && it->is_string() && it->get<std::string>() == ref) {
      return ReadDescriptor(e, what + " manifests[" + std::to_string(i) + "]");
    }
  }
  return Fail(Errc::kNotFound, what + ": no manifest is tagged '" + std::string(ref) + "'");
}

Result<Descriptor> PickPlatform(const json& index, const std::string& what) {
  const auto m = index.find("manifests");
  if (m == index.end() || !m->is_array()) return Fail(Errc::kInvalidData, what + ": no manifests list");
  const std::string arch = HostArch();
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& e = (*m)[i];
    if (!e.is_object() || !e.contains("platform") || !e["platform"].is_object()) continue;
    const json& p = e["platform"];
    if (p.value("os", "") == "linux" && p.value("architecture", "") == arch) {
      return ReadDescriptor(e, what + " manifests[" + std::to_string(i) + "]");
    }
  }
  return Fail(Errc::kNotFound, what + ": no manifest for linux/" + arch);
}

ImageConfig ReadImageConfig(const json& config) {
  ImageConfig out;
  const auto c = config.find("config");
  if (c == config.end() || !c->is_object()) return out;
  if (c->contains("Env") && (*c)["Env"].is_array()) {
    for (const json& e : (*c)["Env"]) {
      if (!e.is_string()) continue;
      const std::string kv = e.get<std::string>();
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0 || kv.size() > kMaxEnvBytes || out.env.size() >= kMaxEnv) continue;
      const std::string name = kv.substr(0, eq);
      const bool valid = !std::isdigit(static_cast<unsigned char>(name[0])) &&
                         std::all_of(name.begin(), name.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
      if (valid) out.env.emplace_back(name, kv.substr(eq + 1));
    }
  }
  if (c->contains("WorkingDir") && (*c)["WorkingDir"].is_string()) out.working_dir = (*c)["WorkingDir"];
  return out;
}

// ---- extraction helpers ----
// libarchive's message for the last error; it may have none (a NULL string).
std::string ArchiveError(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown error (libarchive gave no message)";
}

Result<std::vector<std::string>> SplitEntryPath(const char* raw, const Limits& limits) {
  if (raw == nullptr) return Fail(Errc::kInvalidData, "an entry without a name");
  const std::string_view name(raw);
  if (name.size() > limits.max_path_bytes) return Fail(Errc::kInvalidData, "an entry name is too long");
  if (name.starts_with('/')) return Fail(Errc::kInvalidData, "'" + std::string(name) + "': an absolute name");
  std::vector<std::string> parts;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    const std::size_t slash = std::min(name.find('/', pos), name.size());
    const std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Fail(Errc::kInvalidData, "'" + std::string(name) + "': a '..' component");
    if (part.size() > 255) return Fail(Errc::kInvalidData, "'" + std::string(name) + "': a component over 255 bytes");
    parts.emplace_back(part);
  }
  if (parts.size() > static_cast<std::size_t>(limits.max_depth)) {
    return Fail(Errc::kInvalidData, "'" + std::string(name) + "': deeper than " + std::to_string(limits.max_depth));
  }
  return parts;
}

std::string Join(const std::vector<std::string>& parts, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += (i ? "/" : "") + parts[i];
  return out;
}

// Walks `name` in `dirfd` and everything below it, never following a link, adding the regular
// files' sizes to `bytes`; with `remove`, removes each entry after counting it (the image
// cache's own trees: a finished one may hold read-only directories).
Status WalkTree(int dirfd, const std::string& name, bool remove, std::uint64_t& bytes, int depth = 0) {
  if (depth > kMaxRemoveDepth) return Fail(Errc::kInvalidData, "a tree too deep to remove");
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status{} : FailErrno("stat " + name);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (S_ISREG(st.st_mode)) bytes += static_cast<std::uint64_t>(st.st_size);
    if (remove && ::unlinkat(dirfd, name.c_str(), 0) != 0) return FailErrno("remove " + name);
    return {};
  }
  const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FailErrno("open " + name);
  if (remove) (void)::fchmod(fd, 0700);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return FailErrno("list " + name);
  }
  std::vector<std::string> children;
  while (const dirent* e = ::readdir(dir)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) children.emplace_back(e->d_name);
  }
  Status st_children;
  for (const std::string& c : children) {
    if (auto s = WalkTree(::dirfd(dir), c, remove, bytes, depth + 1); !s) {
      st_children = s;
      break;
    }
  }
  ::closedir(dir);
  if (!st_children) return st_children;
  if (remove && ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return FailErrno("remove " + name);
  return {};
}

// Removes `name` in `dirfd` and, for a directory, everything below it; symlinks are removed,
// never followed.
Status RemoveTree(int dirfd, const std::string& name) {
  std::uint64_t ignored = 0;
  return WalkTree(dirfd, name, true, ignored);
}

}  // namespace

bool IsSha256Digest(std::string_view d) {
  if (d.size() != 71 || !d.starts_with("sha256:")) return false;
  return std::all_of(d.begin() + 7, d.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// ---------------------------------------------------------------- resolve

Result<ResolvedImage> Resolve(int layout_fd, std::string_view ref, const Limits& limits,
                              const std::optional<Reader>& reader) {
  auto layout_file = OpenInLayout(layout_fd, {"oci-layout"}, reader);
  if (!layout_file) return std::unexpected(WithContext(layout_file.error(), "not an OCI image layout"));
  auto layout_text = ReadSmall(layout_file->get(), 4096, "oci-layout");
  if (!layout_text) return std::unexpected(layout_text.error());
  auto layout = ParseJson(*layout_text, "oci-layout");
  if (!layout) return std::unexpected(layout.error());
  const std::string version = layout->value("imageLayoutVersion", "");
  if (!version.starts_with("1.")) {
    return Fail(Errc::kUnsupported, "oci-layout: imageLayoutVersion '" + version + "' is not 1.x");
  }
  auto index_file = OpenInLayout(layout_fd, {"index.json"}, reader);
  if (!index_file) return std::unexpected(index_file.error());
  auto index_text = ReadSmall(index_file->get(), limits.max_json_bytes, "index.json");
  if (!index_text) return std::unexpected(index_text.error());
  auto index = ParseJson(*index_text, "index.json");
  if (!index) return std::unexpected(index.error());
  auto chosen = PickFromIndex(*index, ref, "index.json");
  if (!chosen) return std::unexpected(chosen.error());
  if (chosen->media_type == kOciIndex || chosen->media_type == kDockerList) {
    auto nested = ReadJsonBlob(layout_fd, *chosen, limits, reader, "image index");
    if (!nested) return std::unexpected(nested.error());
    chosen = PickPlatform(*nested, "image index " + Short(chosen->digest));
    if (!chosen) return std::unexpected(chosen.error());
  }
  if (chosen->media_type != kOciManifest && chosen->media_type != kDockerManifest) {
    return Fail(Errc::kUnsupported, "manifest " + Short(chosen->digest) + ": media type '" + chosen->media_type +
                                        "' is not an image manifest");
  }
  auto manifest = ReadJsonBlob(layout_fd, *chosen, limits, reader, "manifest");
  if (!manifest) return std::unexpected(manifest.error());
  ResolvedImage image;
  image.manifest_digest = chosen->digest;
  if (manifest->value("schemaVersion", 0) != 2) return Fail(Errc::kUnsupported, "manifest: schemaVersion is not 2");
  auto config = ReadDescriptor(manifest->value("config", json()), "manifest config");
  if (!config) return std::unexpected(config.error());
  image.config = *config;
  const json layers = manifest->value("layers", json());
  if (!layers.is_array()) return Fail(Errc::kInvalidData, "manifest: no layers list");
  if (layers.size() > limits.max_layers) {
    return Fail(Errc::kInvalidData, "manifest: " + std::to_string(layers.size()) + " layers; the limit is " +
                                        std::to_string(limits.max_layers));
  }
  for (std::size_t i = 0; i < layers.size(); ++i) {
    auto d = ReadDescriptor(layers[i], "manifest layers[" + std::to_string(i) + "]");
    if (!d) return std::unexpected(d.error());
    if (!IsLayerType(d->media_type)) {
      return Fail(Errc::kUnsupported, "manifest layers[" + std::to_string(i) + "]: media type '" + d->media_type +
                                          "' is not a tar layer");
    }
    if (d->size > limits.max_layer_bytes) {
      return Fail(Errc::kInvalidData, "manifest layers[" + std::to_string(i) + "]: " + std::to_string(d->size) +
                                          " bytes; the limit is " + std::to_string(limits.max_layer_bytes));
    }
    image.layers.push_back(*d);
  }
  auto config_json = ReadJsonBlob(layout_fd, image.config, limits, reader, "image config");
  if (!config_json) return std::unexpected(config_json.error());
  image.image_config = ReadImageConfig(*config_json);
  return image;
}

// ---------------------------------------------------------------- extraction

namespace {

struct Budget {
  std::uint64_t entries = 0, bytes = 0;
};

struct ExtractState {
  int rootfs = -1;
  Limits limits;
  Budget budget;
  std::map<std::string, mode_t> dir_modes;  // relative path -> the mode its entry asked for
  std::set<std::string> this_layer;         // paths created by the layer being applied
  // The blob reader (libarchive callback).
  int blob = -1;
  const Descriptor* expect = nullptr;
  std::unique_ptr<Sha256> hash;
  std::uint64_t read = 0;
  bool too_big = false;
  char buf[1 << 16];
};

using State = ExtractState;

la_ssize_t ReadCallback(archive* a, void* data, const void** out) {
  auto* s = static_cast<State*>(data);
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::read(s->blob, s->buf, sizeof s->buf); });
    if (n < 0) {
      archive_set_error(a, errno, "read the layer blob");
      return -1;
    }
    s->read += static_cast<std::uint64_t>(n);
    const std::uint64_t cap = s->expect ? s->expect->size : s->limits.max_layer_bytes;
    if (s->read > cap) {
      s->too_big = true;
      archive_set_error(a, EFBIG, "the layer blob is larger than its descriptor or the limit");
      return -1;
    }
    if (s->hash && !s->hash->Update(std::string_view(s->buf, static_cast<std::size_t>(n)))) {
      archive_set_error(a, EIO, "SHA-256 failed");
      return -1;
    }
    *out = s->buf;
    return n;
  }
}

// Opens (creating as 0700 where missing) every directory in parts[0..n): no symlink is ever
// followed: each component is opened with O_NOFOLLOW | O_DIRECTORY, ".." never occurs.
Result<UniqueFd> OpenParent(State& s, const std::vector<std::string>& parts, std::size_t n, bool create) {
  UniqueFd cur(::openat(s.rootfs, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return FailErrno("open the rootfs");
  for (std::size_t i = 0; i < n; ++i) {
    if (create && ::mkdirat(cur.get(), parts[i].c_str(), 0700) == 0) {
      s.dir_modes.emplace(Join(parts, i + 1), 0755);
      s.this_layer.insert(Join(parts, i + 1));
    }
    UniqueFd next(::openat(cur.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      if (errno == ELOOP || errno == ENOTDIR) {
        return Fail(Errc::kInvalidData, "'" + Join(parts, i + 1) +
                                            "' is a symbolic link or not a directory: an entry below it is refused "
                                            "(extraction never follows a link)");
      }
      if (errno == ENOENT && !create) return UniqueFd();
      return FailErrno("open " + Join(parts, i + 1));
    }
    cur = std::move(next);
  }
  return cur;
}

// Clears what stands at `leaf` unless it is a directory and `keep_dir`.
Status ClearLeaf(int parent, const std::string& leaf, bool keep_dir) {
  struct stat st {};
  if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status{} : FailErrno("stat " + leaf);
  }
  if (S_ISDIR(st.st_mode) && keep_dir) return {};
  return RemoveTree(parent, leaf);
}

Status WriteFile(State& s, archive* a, int parent, const std::string& leaf, archive_entry* e) {
  const la_int64_t size = archive_entry_size(e);
  if (size < 0 || s.budget.bytes + static_cast<std::uint64_t>(size) > s.limits.max_unpacked_bytes) {
    return Fail(Errc::kInvalidData, "the unpacked image would be larger than " +
                                        std::to_string(s.limits.max_unpacked_bytes) + " bytes");
  }
  UniqueFd fd(::openat(parent, leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return FailErrno("create");
  std::uint64_t written = 0;
  char buf[1 << 16];
  for (;;) {
    const la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) return Fail(Errc::kInvalidData, std::string("reading its data: ") + ArchiveError(a));
    if (n == 0) break;
    written += static_cast<std::uint64_t>(n);
    if (written > static_cast<std::uint64_t>(size)) return Fail(Errc::kInvalidData, "more data than its header says");
    if (auto st = WriteAll(fd.get(), std::string_view(buf, static_cast<std::size_t>(n))); !st) return st;
  }
  s.budget.bytes += written;
  if (::fchmod(fd.get(), archive_entry_perm(e) & 0755) != 0) return FailErrno("chmod");
  return {};
}

Status LinkFile(State& s, int parent, const std::string& leaf, const char* target) {
  auto tparts = SplitEntryPath(target, s.limits);
  if (!tparts) return std::unexpected(WithContext(tparts.error(), "hard link target"));
  if (tparts->empty()) return Fail(Errc::kInvalidData, "a hard link to the root");
  auto tparent = OpenParent(s, *tparts, tparts->size() - 1, false);
  if (!tparent) return std::unexpected(tparent.error());
  struct stat st {};
  if (!*tparent || ::fstatat(tparent->get(), tparts->back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISREG(st.st_mode)) {
    return Fail(Errc::kInvalidData, "a hard link to '" + std::string(target) + "', which is not a regular file of the image");
  }
  if (::linkat(tparent->get(), tparts->back().c_str(), parent, leaf.c_str(), 0) != 0) return FailErrno("link");
  return {};
}

// ".wh..wh..opq" in parts[0..n): what the lower layers put in that directory goes.
Status Opaque(State& s, const std::vector<std::string>& parts, std::size_t n) {
  auto dir = OpenParent(s, parts, n, true);
  if (!dir) return std::unexpected(dir.error());
  UniqueFd listing(::openat(dir->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DIR* d = listing ? ::fdopendir(listing.get()) : nullptr;
  if (d == nullptr) return FailErrno("list the opaque directory");
  (void)listing.release();
  std::vector<std::string> lower;
  const std::string prefix = n ? Join(parts, n) + "/" : "";
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != ".." && !s.this_layer.contains(prefix + name)) lower.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : lower) {
    if (auto st = RemoveTree(dir->get(), name); !st) return st;
  }
  return {};
}

Status ApplyEntry(State& s, archive* a, archive_entry* e) {
  if (++s.budget.entries > s.limits.max_entries) {
    return Fail(Errc::kInvalidData, "more than " + std::to_string(s.limits.max_entries) + " entries");
  }
  auto parts = SplitEntryPath(archive_entry_pathname(e), s.limits);
  if (!parts) return std::unexpected(parts.error());
  if (parts->empty()) return {};  // "./": the root keeps its own mode
  const std::string path = Join(*parts, parts->size());
  const std::string& leaf = parts->back();
  const auto fail = [&](const std::string& why) { return Fail(Errc::kInvalidData, "'" + path + "': " + why); };
  const mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);
  if (hardlink == nullptr && type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
    const char* what = type == AE_IFCHR ? "a character device" : type == AE_IFBLK ? "a block device"
                       : type == AE_IFIFO ? "a FIFO" : type == AE_IFSOCK ? "a socket" : "an unknown entry type";
    return fail(std::string(what) + ": device nodes, FIFOs and sockets are refused");
  }
  if (leaf == kOpaque) return Opaque(s, *parts, parts->size() - 1);
  auto parent = OpenParent(s, *parts, parts->size() - 1, true);
  if (!parent) return std::unexpected(WithContext(parent.error(), "'" + path + "'"));
  if (leaf.starts_with(kWhiteout)) {
    const std::string victim = leaf.substr(kWhiteout.size());
    if (victim.empty() || victim == "." || victim == "..") return fail("a malformed whiteout");
    const std::string victim_path = Join(*parts, parts->size() - 1) + (parts->size() > 1 ? "/" : "") + victim;
    if (s.this_layer.contains(victim_path)) return {};
    return RemoveTree(parent->get(), victim);
  }
  s.this_layer.insert(path);
  Status st;
  if (hardlink != nullptr) {
    st = ClearLeaf(parent->get(), leaf, false);
    if (st) st = LinkFile(s, parent->get(), leaf, hardlink);
  } else if (type == AE_IFDIR) {
    st = ClearLeaf(parent->get(), leaf, true);
    if (st && ::mkdirat(parent->get(), leaf.c_str(), 0700) != 0 && errno != EEXIST) st = FailErrno("mkdir");
    s.dir_modes[path] = archive_entry_perm(e) & 0755;
  } else if (type == AE_IFLNK) {
    const char* target = archive_entry_symlink(e);
    if (target == nullptr || std::strlen(target) >= s.limits.max_path_bytes) return fail("a bad symlink target");
    st = ClearLeaf(parent->get(), leaf, false);
    if (st && ::symlinkat(target, parent->get(), leaf.c_str()) != 0) st = FailErrno("symlink");
  } else {
    st = ClearLeaf(parent->get(), leaf, false);
    if (st) st = WriteFile(s, a, parent->get(), leaf, e);
  }
  if (!st) return std::unexpected(WithContext(st.error(), "'" + path + "'"));
  return {};
}

// Drains what libarchive left unread (the end-of-archive padding) so the whole blob is hashed.
Status Drain(State& s) {
  for (;;) {
    const ssize_t n = RetryEintr([&] { return ::read(s.blob, s.buf, sizeof s.buf); });
    if (n < 0) return FailErrno("read the layer blob");
    if (n == 0) return {};
    s.read += static_cast<std::uint64_t>(n);
    if (s.expect && s.read > s.expect->size) return Fail(Errc::kIntegrity, "the blob is larger than its descriptor");
    if (s.hash) {
      if (auto ok = s.hash->Update(std::string_view(s.buf, static_cast<std::size_t>(n))); !ok) return ok;
    }
  }
}

}  // namespace

struct LayerExtractor::State : ExtractState {};

LayerExtractor::LayerExtractor(int rootfs_fd, const Limits& limits) : state_(std::make_unique<State>()) {
  state_->rootfs = rootfs_fd;
  state_->limits = limits;
}
LayerExtractor::~LayerExtractor() = default;
std::uint64_t LayerExtractor::entries() const { return state_->budget.entries; }
std::uint64_t LayerExtractor::bytes() const { return state_->budget.bytes; }

Status LayerExtractor::Apply(int blob_fd, const Descriptor* expect) {
  State& s = *state_;
  s.blob = blob_fd;
  s.expect = expect;
  s.hash = expect ? std::make_unique<Sha256>() : nullptr;
  s.read = 0;
  s.too_big = false;
  s.this_layer.clear();
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open(a.get(), &s, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    if (s.too_big) return Fail(Errc::kIntegrity, "the blob is larger than its descriptor");
    return Fail(Errc::kInvalidData, std::string("not a tar layer: ") + ArchiveError(a.get()));
  }
  for (;;) {
    archive_entry* e = nullptr;
    const int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (s.too_big) return Fail(Errc::kIntegrity, "the blob is larger than its descriptor");
      return Fail(Errc::kInvalidData, std::string("a malformed tar stream: ") + ArchiveError(a.get()));
    }
    if (auto st = ApplyEntry(s, a.get(), e); !st) return st;
  }
  if (auto st = Drain(s); !st) return st;
  if (expect) {
    auto digest = s.hash->Finish();
    if (!digest) return std::unexpected(digest.error());
    const std::string& got = *digest;
    if (got != expect->digest) return Fail(Errc::kIntegrity, "the blob's sha256 is " + got + ", not its digest");
    if (s.read != expect->size) {
      return Fail(Errc::kIntegrity, std::to_string(s.read) + " bytes, the descriptor says " + std::to_string(expect->size));
    }
  }
  return {};
}

// Children before parents (reverse order of the sorted paths), so a directory that ends up
// without search permission is changed last.
Status LayerExtractor::Finish() {
  State& s = *state_;
  for (auto it = s.dir_modes.rbegin(); it != s.dir_modes.rend(); ++it) {
    auto parts = SplitEntryPath(it->first.c_str(), s.limits);
    if (!parts || parts->empty()) continue;
    auto parent = OpenParent(s, *parts, parts->size() - 1, false);
    if (!parent || !*parent) continue;  // removed by a later layer
    UniqueFd dir(::openat(parent->get(), parts->back().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dir) continue;  // replaced by something else
    if (::fchmod(dir.get(), it->second) != 0) return FailErrno("chmod " + it->first);
  }
  if (::fchmod(s.rootfs, 0755) != 0) return FailErrno("chmod the rootfs");
  return {};
}

// ---------------------------------------------------------------- the cache

namespace {

Result<UniqueFd> OpenCache(const std::string& cache_dir) {
  if (::mkdir(cache_dir.c_str(), 0700) != 0 && errno != EEXIST) return FailErrno("create " + cache_dir);
  UniqueFd fd(::open(cache_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return FailErrno("open " + cache_dir);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno("stat " + cache_dir);
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
    return Fail(Errc::kPermissionDenied, cache_dir + ": the image cache must be Cordon's own, not group/other writable");
  }
  return fd;
}

constexpr const char* kPrunedMeanwhile = "the image cache entry was pruned while it was being taken";

// Opens and locks <hex>.lock; a lock file a pruner unlinked while we waited is opened again.
Result<UniqueFd> LockEntry(int cache_fd, const std::string& hex, int how) {
  for (;;) {
    UniqueFd lock(::openat(cache_fd, (hex + ".lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock) return FailErrno("create the cache lock");
    if (RetryEintr([&] { return ::flock(lock.get(), how); }) != 0) return FailErrno("lock the cache entry");
    struct stat st {};
    if (::fstat(lock.get(), &st) != 0) return FailErrno("stat the cache lock");
    if (st.st_nlink > 0) return lock;
  }
}

// The entry is ready and `lock` held: record the use (the lock file's mtime) and keep a shared
// lock for the caller's lifetime. flock cannot downgrade atomically, so after an unpack a pruner
// may slip in between: the entry is then checked again and, if gone, the caller is told to retry.
Result<Unpacked> HoldEntry(int cache_fd, const std::string& hex, UniqueFd lock, Unpacked out) {
  (void)::futimens(lock.get(), nullptr);
  if (RetryEintr([&] { return ::flock(lock.get(), LOCK_SH); }) != 0) return FailErrno("lock the cache entry");
  struct stat st {}, lst {};
  if (::fstat(lock.get(), &lst) != 0 || lst.st_nlink == 0 ||
      ::fstatat(cache_fd, hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail(Errc::kNotFound, kPrunedMeanwhile);
  }
  out.hold = std::move(lock);
  return out;
}

Status Extract(int layout_fd, const ResolvedImage& image, int tmp_fd, const Limits& limits,
               const std::optional<Reader>& reader, Unpacked& out) {
  if (::mkdirat(tmp_fd, "rootfs", 0700) != 0) return FailErrno("mkdir rootfs");
  UniqueFd rootfs(::openat(tmp_fd, "rootfs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!rootfs) return FailErrno("open rootfs");
  LayerExtractor ex(rootfs.get(), limits);
  for (std::size_t i = 0; i < image.layers.size(); ++i) {
    const Descriptor& d = image.layers[i];
    const std::string what = "layer " + std::to_string(i + 1) + "/" + std::to_string(image.layers.size()) + " (" +
                             Short(d.digest) + ")";
    auto blob = OpenBlob(layout_fd, d.digest, reader);
    if (!blob) return std::unexpected(WithContext(blob.error(), what));
    if (auto st = ex.Apply(blob->get(), &d); !st) return std::unexpected(WithContext(st.error(), what));
  }
  if (auto st = ex.Finish(); !st) return st;
  out.entries = ex.entries();
  out.bytes = ex.bytes();
  if (::syncfs(rootfs.get()) != 0) return FailErrno("syncfs");
  return {};
}

}  // namespace

namespace {

Result<Unpacked> UnpackOnce(int layout_fd, const ResolvedImage& image, const std::string& cache_dir, const Limits& limits,
                            const std::optional<Reader>& reader) {
  if (!IsSha256Digest(image.manifest_digest)) return Fail(Errc::kInvalidArgument, "bad manifest digest");
  auto cache = OpenCache(cache_dir);
  if (!cache) return std::unexpected(cache.error());
  const std::string hex = image.manifest_digest.substr(7);
  Unpacked out;
  out.rootfs = cache_dir + "/" + hex + "/rootfs";
  const auto ready = [&] {
    struct stat st {};
    return ::fstatat(cache->get(), hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
  };
  // Shared first: jobs using the same finished entry never wait for each other.
  auto lock = LockEntry(cache->get(), hex, LOCK_SH);
  if (!lock) return std::unexpected(lock.error());
  if (!ready()) {
    lock->reset();
    lock = LockEntry(cache->get(), hex, LOCK_EX);
    if (!lock) return std::unexpected(lock.error());
  }
  if (ready()) {
    out.cached = true;
    return HoldEntry(cache->get(), hex, std::move(*lock), std::move(out));
  }
  const std::string tmp = hex + ".tmp";
  if (auto s = RemoveTree(cache->get(), tmp); !s) return std::unexpected(WithContext(s.error(), "remove a stale unpack"));
  if (::mkdirat(cache->get(), tmp.c_str(), 0700) != 0) return FailErrno("create " + tmp);
  UniqueFd tmp_fd(::openat(cache->get(), tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  Status done = tmp_fd ? Extract(layout_fd, image, tmp_fd.get(), limits, reader, out) : Status(FailErrno("open " + tmp));
  if (done && ::fchmod(tmp_fd.get(), 0755) != 0) done = FailErrno("chmod " + tmp);
  if (done && ::renameat(cache->get(), tmp.c_str(), cache->get(), hex.c_str()) != 0) done = FailErrno("rename " + tmp);
  if (!done) {
    (void)RemoveTree(cache->get(), tmp);
    return std::unexpected(done.error());
  }
  (void)::fsync(cache->get());
  return HoldEntry(cache->get(), hex, std::move(*lock), std::move(out));
}

}  // namespace

Result<Unpacked> Unpack(int layout_fd, const ResolvedImage& image, const std::string& cache_dir, const Limits& limits,
                        const std::optional<Reader>& reader) {
  for (int attempt = 0;; ++attempt) {
    auto out = UnpackOnce(layout_fd, image, cache_dir, limits, reader);
    if (out || attempt == 2 || out.error().message != kPrunedMeanwhile) return out;
  }
}

Result<PruneReport> PruneCache(const std::string& cache_dir, std::int64_t older_than_seconds, bool dry_run) {
  auto cache = OpenCache(cache_dir);
  if (!cache) return std::unexpected(cache.error());
  std::vector<std::string> names;
  {
    UniqueFd list_fd(::openat(cache->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    DIR* dir = list_fd ? ::fdopendir(list_fd.release()) : nullptr;
    if (dir == nullptr) return FailErrno("list " + cache_dir);
    while (const dirent* e = ::readdir(dir)) names.emplace_back(e->d_name);
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  const std::int64_t now = ::time(nullptr);
  PruneReport report;
  for (const std::string& hex : names) {
    if (!IsSha256Digest("sha256:" + hex)) continue;  // <hex>.lock, <hex>.tmp: handled with their entry
    struct stat st {};
    if (::fstatat(cache->get(), hex.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    UniqueFd lock(::openat(cache->get(), (hex + ".lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock) return FailErrno("open the lock of " + hex);
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return FailErrno("lock " + hex);
      ++report.in_use;
      continue;
    }
    struct stat lst {};
    if (::fstat(lock.get(), &lst) != 0) return FailErrno("stat the lock of " + hex);
    // An entry unpacked before lock files recorded use: its directory's mtime (the rename).
    const std::int64_t last_used = std::max<std::int64_t>(lst.st_mtim.tv_sec, st.st_mtim.tv_sec);
    if (now - last_used < older_than_seconds) {
      ++report.recent;
      continue;
    }
    PrunedEntry entry{"sha256:" + hex, 0, last_used};
    // One walk counts the entry's bytes and, unless this is a dry run, removes it.
    if (auto s = WalkTree(cache->get(), hex, !dry_run, entry.bytes); !s) {
      return std::unexpected(WithContext(s.error(), "prune " + hex));
    }
    if (!dry_run) {
      if (auto s = RemoveTree(cache->get(), hex + ".tmp"); !s) return std::unexpected(s.error());
      // Unlinked while held: a waiter that then gets it sees nlink 0 and opens the new one.
      (void)::unlinkat(cache->get(), (hex + ".lock").c_str(), 0);
    }
    report.removed.push_back(std::move(entry));
  }
  if (!dry_run) (void)::fsync(cache->get());
  return report;
}

}  // namespace cordon::images
