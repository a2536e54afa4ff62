// OCI image layouts as trainer images: `spec.trainer.image: oci:/srv/images/trainer:TAG`.
//
// What Cordon trusts: nothing in the layout. The layout is a submitter's directory (under
// cordond opened as the submitter, then read only through that fd, openat relative, no symlink
// followed). Every blob is named by its sha256 and checked against it while it is read; JSON
// blobs are size-limited before they are parsed; the chain index.json -> manifest -> config +
// layers is verified link by link, so the manifest digest (which a spec may pin) fixes every
// byte of the rootfs.
//
// The rootfs is unpacked once per manifest digest into a root-owned cache under the state
// directory: <cache>/<hex>/rootfs. Crash-safe and race-free: the unpack runs under an flock of
// <cache>/<hex>.lock into <cache>/<hex>.tmp (a leftover from a crash is removed first) and is
// renamed into place only when every layer's digest matched. A finished entry is never written
// again.
//
// Layers are extracted relative to the rootfs dirfd: every parent is resolved with
// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) (or a component walk
// with O_NOFOLLOW where openat2 is missing), the leaf is created with O_NOFOLLOW | O_EXCL, so a
// layer that plants a symlink and then writes through it is refused, never followed. Refused
// (the whole image): names with a ".." component or absolute names, device nodes, FIFOs,
// sockets, hard links to anything but a regular file of the tree, more entries / bytes than the
// limits. setuid/setgid/sticky bits and group/other write bits are dropped; every entry is
// owned by root (uid/gid in the tar are ignored: the trainer is one unprivileged uid anyway).
// OCI whiteouts are applied: ".wh.NAME" removes NAME of the lower layers, ".wh..wh..opq" empties
// its directory of what the lower layers put there.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cordon/error.h"
#include "cordon/unique_fd.h"

namespace cordon::images {

struct Limits {
  std::uint64_t max_json_bytes = 4u << 20;          // index.json, a manifest, a config
  std::size_t max_layers = 128;
  std::uint64_t max_layer_bytes = 16ull << 30;      // one compressed blob
  std::uint64_t max_unpacked_bytes = 64ull << 30;   // every file of every layer, summed
  std::uint64_t max_entries = 1'000'000;            // tar entries of every layer, summed
  std::size_t max_path_bytes = 4096;
  int max_depth = 128;                              // path components
};

// "sha256:<64 lowercase hex>": the only digest algorithm accepted.
[[nodiscard]] bool IsSha256Digest(std::string_view digest);

// A blob's descriptor, as the manifest or index gives it.
struct Descriptor {
  std::string media_type;
  std::string digest;  // sha256:<hex>
  std::uint64_t size = 0;
};

// What the runner takes from the image config: Env (every NAME=VALUE with a valid name) and
// WorkingDir (recorded only: the trainer's working directory stays /tmp).
struct ImageConfig {
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;
};

struct ResolvedImage {
  std::string manifest_digest;  // sha256:<hex> of the manifest blob: the pin, the cache key
  Descriptor config;
  std::vector<Descriptor> layers;
  ImageConfig image_config;
};

// Who may read the layout (cordond's submitter): each blob and the blobs/, blobs/sha256
// directories must be readable (searchable) by that uid or one of the groups by their mode
// bits, so a job cannot expose a file its submitter could not read. nullopt: root's own run.
struct Reader {
  uid_t uid = 0;
  std::vector<gid_t> groups;
};

// Reads oci-layout and index.json through `layout_fd` and picks the manifest as skopeo's
// `oci:` transport does: `ref` empty -> the index must hold exactly one manifest; otherwise the
// one annotated org.opencontainers.image.ref.name == ref. A nested index (multi-platform) is
// followed to the linux manifest of this machine's architecture. Verifies the manifest and the
// config blobs; layers are verified while unpacking.
[[nodiscard]] Result<ResolvedImage> Resolve(int layout_fd, std::string_view ref, const Limits& limits,
                                            const std::optional<Reader>& reader = std::nullopt);

struct Unpacked {
  std::string rootfs;   // <cache>/<hex>/rootfs
  bool cached = false;  // true: it was there already, nothing was read but the JSON
  std::uint64_t entries = 0, bytes = 0;
  // A shared flock of <cache>/<hex>.lock, held for as long as the entry is in use (the job):
  // PruneCache never removes an entry someone holds. The lock file's mtime is the last use.
  UniqueFd hold;
};

// Ensures <cache_dir>/<hex>/rootfs holds the image's rootfs (cache_dir is created 0700).
[[nodiscard]] Result<Unpacked> Unpack(int layout_fd, const ResolvedImage& image, const std::string& cache_dir,
                                      const Limits& limits, const std::optional<Reader>& reader = std::nullopt);

// `cordon images prune`: removes the cache entries last used longer than `older_than` ago that no
// job holds (an exclusive flock of the entry's lock file, taken without waiting), and the
// leftovers of crashed unpacks. Never follows a link; a name that is not a cache entry is left.
struct PrunedEntry {
  std::string digest;           // sha256:<hex>
  std::uint64_t bytes = 0;      // regular files' sizes
  std::int64_t last_used = 0;   // unix seconds
};
struct PruneReport {
  std::vector<PrunedEntry> removed;  // (or, with dry_run, those that would be)
  std::size_t in_use = 0, recent = 0;
};
[[nodiscard]] Result<PruneReport> PruneCache(const std::string& cache_dir, std::int64_t older_than_seconds,
                                             bool dry_run);

// The extractor on its own (Unpack uses it; tests drive it directly). Layers are applied in
// order onto the tree at `rootfs_fd`; directories are created 0700 (so extraction can write
// into directories that end up read-only) and get their final modes from Finish().
class LayerExtractor final {
 public:
  LayerExtractor(int rootfs_fd, const Limits& limits);
  ~LayerExtractor();
  LayerExtractor(const LayerExtractor&) = delete;
  LayerExtractor& operator=(const LayerExtractor&) = delete;

  // One layer read from `blob_fd` (tar; gzip or zstd compressed or not). With `expect`, the
  // compressed bytes must hash to expect->digest and number expect->size; a mismatch fails
  // the layer (what it wrote stays: the caller throws the whole tree away).
  [[nodiscard]] Status Apply(int blob_fd, const Descriptor* expect = nullptr);
  [[nodiscard]] Status Finish();
  [[nodiscard]] std::uint64_t entries() const;
  [[nodiscard]] std::uint64_t bytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cordon::images
