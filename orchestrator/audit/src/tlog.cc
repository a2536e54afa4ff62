// Inclusion and consistency proofs from tree.hashes, and the C2SP
// tlog-tiles export (height 8) with entry bundles.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "cordon/file_io.h"
#include "cordon/audit/tlog.h"
#include "cordon/audit/verify.h"
#include "cordon/unique_fd.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {

using namespace internal;

namespace {

constexpr int kTileHeight = 8;
constexpr std::uint64_t kTileWidth = 1u << kTileHeight;

std::string B64(const Bytes32& h) { return Base64(h.data(), h.size()); }

// A shared flock on audit.lock while the tree is read (a writer's recovery
// may cut tree.hashes back).
class SharedLock final {
 public:
  explicit SharedLock(const std::string& dir)
      : fd_(::open((dir + "/" + kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) {
    if (fd_) {
      (void)RetryEintr([&] { return ::flock(fd_.get(), LOCK_SH); });
    }
  }
  ~SharedLock() {
    if (fd_) ::flock(fd_.get(), LOCK_UN);
  }
  SharedLock(const SharedLock&) = delete;
  SharedLock& operator=(const SharedLock&) = delete;

 private:
  UniqueFd fd_;
};

Result<TreeReader> OpenTree(const std::string& dir) {
  auto tree = TreeReader::Open(dir);
  if (!tree) return std::unexpected(WithContext(tree.error(), "the Merkle tree (a writer creates it: append or "
                                                              "run `cordon audit checkpoint`)"));
  return tree;
}

// The tree and a size within it (unset: the log now).
Result<std::pair<TreeReader, std::uint64_t>> OpenTree(const std::string& dir, std::optional<std::uint64_t> size) {
  auto tree = OpenTree(dir);
  if (!tree) return std::unexpected(tree.error());
  const std::uint64_t records = tree->records();
  if (size && *size > records) {
    return Fail(Errc::kInvalidArgument, "size " + std::to_string(*size) + ": the log has " +
                                            std::to_string(records) + " entries");
  }
  return std::pair{std::move(*tree), size.value_or(records)};
}

// C2SP tlog-tiles index path: 1234067 -> x001/x234/067.
std::string TileIndexPath(std::uint64_t n) {
  char part[8];
  std::snprintf(part, sizeof part, "%03llu", static_cast<unsigned long long>(n % 1000));
  std::string out = part;
  for (n /= 1000; n > 0; n /= 1000) {
    std::snprintf(part, sizeof part, "x%03llu/", static_cast<unsigned long long>(n % 1000));
    out = part + out;
  }
  return out;
}

std::string TilePath(const std::string& level, std::uint64_t n, std::uint64_t width) {
  std::string p = "tile/" + level + "/" + TileIndexPath(n);
  if (width != kTileWidth) p += ".p/" + std::to_string(width);
  return p;
}

Status WriteExport(const std::filesystem::path& root, const std::string& rel, std::string_view data) {
  const std::filesystem::path path = root / rel;
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Fail(Errc::kIo, "mkdir " + path.parent_path().string() + ": " + ec.message());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return Fail(Errc::kIo, "write " + path.string());
  return {};
}

// Entry bundles: each record as a big-endian uint16 length and its bytes.
Result<std::uint64_t> ExportBundles(const std::string& dir, const std::filesystem::path& out, std::uint64_t size) {
  auto segments = ListSegments(dir);
  if (!segments) return std::unexpected(segments.error());
  std::string bundle;
  std::uint64_t record = 0;
  std::uint64_t written = 0;
  for (const Segment& s : *segments) {
    auto text = ReadFileLimited(s.path, 1ull << 40);
    if (!text) return std::unexpected(text.error());
    for (std::size_t at = 0; at < text->size() && record < size;) {
      const std::size_t nl = text->find('\n', at);
      if (nl == std::string::npos) break;
      const std::size_t len = nl - at;
      bundle += static_cast<char>(len >> 8);
      bundle += static_cast<char>(len & 0xff);
      bundle.append(*text, at, len);
      at = nl + 1;
      ++record;
      if (record % kTileWidth == 0 || record == size) {
        const std::uint64_t width = record % kTileWidth == 0 ? kTileWidth : record % kTileWidth;
        if (auto ok = WriteExport(out, TilePath("entries", (record - 1) / kTileWidth, width), bundle); !ok) {
          return std::unexpected(ok.error());
        }
        bundle.clear();
        ++written;
      }
    }
  }
  if (record != size) return Fail(Errc::kIntegrity, "the log has fewer than " + std::to_string(size) + " entries");
  return written;
}

}  // namespace

Result<InclusionProof> ProveInclusion(const std::string& dir, std::uint64_t index, std::optional<std::uint64_t> size) {
  SharedLock lock(dir);
  auto tree = OpenTree(dir, size);
  if (!tree) return std::unexpected(tree.error());
  auto& [reader, n] = *tree;
  auto path = internal::InclusionPath(index, n, reader.Reader());
  if (!path) return std::unexpected(path.error());
  auto root = TreeHash(n, reader.Reader());
  auto leaf = reader.Read(StoredHashIndex(0, index));
  if (!root || !leaf) return std::unexpected(!root ? root.error() : leaf.error());
  InclusionProof p{index, n, B64(*root), B64(*leaf), {}};
  for (const Bytes32& h : *path) p.proof.push_back(B64(h));
  return p;
}

Result<ConsistencyProof> ProveConsistency(const std::string& dir, std::uint64_t old_size,
                                          std::optional<std::uint64_t> new_size) {
  SharedLock lock(dir);
  auto tree = OpenTree(dir, new_size);
  if (!tree) return std::unexpected(tree.error());
  auto& [reader, n] = *tree;
  auto path = internal::ConsistencyPath(old_size, n, reader.Reader());
  if (!path) return std::unexpected(path.error());
  auto old_root = TreeHash(old_size, reader.Reader());
  auto new_root = TreeHash(n, reader.Reader());
  if (!old_root || !new_root) return std::unexpected(!old_root ? old_root.error() : new_root.error());
  ConsistencyProof p{old_size, n, B64(*old_root), B64(*new_root), {}};
  for (const Bytes32& h : *path) p.proof.push_back(B64(h));
  return p;
}

Result<TilesReport> ExportTiles(const std::string& dir, const std::string& out_dir) {
  auto note = LatestCheckpoint(dir);
  if (!note) return std::unexpected(note.error());
  // The body's second and third lines: size and root.
  const std::size_t a = note->find('\n');
  const std::size_t b = note->find('\n', a + 1);
  const std::size_t c = note->find('\n', b + 1);
  if (c == std::string::npos) return Fail(Errc::kInvalidData, "latest checkpoint: malformed");
  const std::uint64_t size = std::stoull(note->substr(a + 1, b - a - 1));
  const std::string root_b64 = note->substr(b + 1, c - b - 1);
  SharedLock lock(dir);
  auto tree = OpenTree(dir);
  if (!tree) return std::unexpected(tree.error());
  if (size > tree->records()) return Fail(Errc::kIntegrity, "tree.hashes is behind the latest checkpoint");
  auto root = TreeHash(size, tree->Reader());
  if (!root) return std::unexpected(root.error());
  if (B64(*root) != root_b64) {
    return Fail(Errc::kIntegrity, "tree.hashes does not give the latest checkpoint's root; run `cordon audit verify`");
  }
  const std::filesystem::path out(out_dir);
  TilesReport report{size, 0, 0};
  for (int level = 0; (size >> (kTileHeight * level)) > 0; ++level) {
    const std::uint64_t hashes = size >> (kTileHeight * level);  // complete subtrees at tree level 8L
    for (std::uint64_t n = 0; n * kTileWidth < hashes; ++n) {
      const std::uint64_t width = std::min(kTileWidth, hashes - n * kTileWidth);
      std::string data;
      data.reserve(width * 32);
      for (std::uint64_t i = 0; i < width; ++i) {
        auto h = tree->Read(StoredHashIndex(kTileHeight * level, n * kTileWidth + i));
        if (!h) return std::unexpected(h.error());
        data.append(reinterpret_cast<const char*>(h->data()), 32);
      }
      if (auto ok = WriteExport(out, TilePath(std::to_string(level), n, width), data); !ok) {
        return std::unexpected(ok.error());
      }
      ++report.tiles;
    }
  }
  auto bundles = ExportBundles(dir, out, size);
  if (!bundles) return std::unexpected(bundles.error());
  report.bundles = *bundles;
  if (auto ok = WriteExport(out, "checkpoint", *note); !ok) return std::unexpected(ok.error());
  return report;
}

}  // namespace cordon::audit
