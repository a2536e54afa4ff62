// The audit log's Merkle tree (RFC 6962 / RFC 9162, as golang.org/x/mod/sumdb/tlog
// computes it): record i = entry i's stored line without its '\n',
// leaf = SHA-256(0x00 || record), node = SHA-256(0x01 || left || right).
//
// Stored hashes: every hash of every complete subtree, in the order
// tlog.StoredHashIndex defines (record n's leaf hash, then the hashes of the
// subtrees that leaf completes). A tree of n records has 2n - popcount(n)
// of them; <audit_dir>/tree.hashes holds them as 32-byte values at
// offset 32 * index, so a proof reads O(log n) hashes and recomputes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "internal.h"

namespace cordon::audit::internal {

inline constexpr const char* kTreeFile = "tree.hashes";

[[nodiscard]] Bytes32 LeafHash(std::string_view record);
[[nodiscard]] Bytes32 NodeHash(const Bytes32& left, const Bytes32& right);
[[nodiscard]] std::uint64_t StoredHashIndex(int level, std::uint64_t n);
[[nodiscard]] std::uint64_t StoredHashCount(std::uint64_t records);
// The number of records whose stored hashes are exactly `count` hashes
// (nullopt: no tree size has that many).
[[nodiscard]] std::optional<std::uint64_t> RecordsForHashCount(std::uint64_t count);

// The right edge of a tree (one hash per set bit of its size, largest
// subtree first): appending a leaf yields the hashes to store, in order.
class Frontier final {
 public:
  // Appends the leaf hash of record size(); `stored` gains the leaf hash and
  // the hash of every subtree it completes.
  void Append(const Bytes32& leaf, std::vector<Bytes32>* stored = nullptr);
  // Appends a whole complete subtree of 2^level records whose hash is `hash`
  // (size() must be a multiple of 2^level): what appending its leaves one by
  // one would leave, without the hashes inside it.
  void AppendSubtree(const Bytes32& hash, int level);
  [[nodiscard]] Bytes32 Root() const;  // RFC 6962 MTH; SHA-256("") for size 0
  [[nodiscard]] std::uint64_t size() const { return size_; }
  // Rebuilds the edge of a tree of `size` records from its stored hashes.
  [[nodiscard]] static Result<Frontier> Load(std::uint64_t size,
                                             const std::function<Result<Bytes32>(std::uint64_t)>& read);

 private:
  std::vector<Bytes32> stack_;
  std::uint64_t size_ = 0;
};

// The hashes of the complete subtrees [from, to) splits into, aligned to
// their own size (each starts at a multiple of 2^level), left to right;
// `leaves` holds the leaf hashes of records [from, to). Appending them to a
// Frontier of size `from` with AppendSubtree equals appending every leaf.
struct Subtree {
  Bytes32 hash;
  int level;
};
void AlignedSubtrees(std::uint64_t from, std::span<const Bytes32> leaves, std::vector<Subtree>& out);

// Random access to stored hashes (a file, or memory in tests).
using HashRead = std::function<Result<Bytes32>(std::uint64_t index)>;

// RFC 6962 MTH of records [0, size) from stored hashes (O(log n) reads).
[[nodiscard]] Result<Bytes32> TreeHash(std::uint64_t size, const HashRead& read);
// Audit path of record `index` in the tree of `size` (bottom to top).
[[nodiscard]] Result<std::vector<Bytes32>> InclusionPath(std::uint64_t index, std::uint64_t size,
                                                          const HashRead& read);
// Consistency proof from the tree of `old_size` (>= 1) to `new_size` (RFC 6962 PROOF).
[[nodiscard]] Result<std::vector<Bytes32>> ConsistencyPath(std::uint64_t old_size, std::uint64_t new_size,
                                                            const HashRead& read);
// RFC 9162 2.1.3.2 and 2.1.4.2.
[[nodiscard]] bool VerifyInclusion(std::uint64_t index, std::uint64_t size, const Bytes32& leaf,
                                   std::span<const Bytes32> proof, const Bytes32& root);
[[nodiscard]] bool VerifyConsistency(std::uint64_t old_size, std::uint64_t new_size, const Bytes32& old_root,
                                     const Bytes32& new_root, std::span<const Bytes32> proof);

// tree.hashes, read-only (pread). Size() is the number of records it covers.
class TreeReader final {
 public:
  [[nodiscard]] static Result<TreeReader> Open(const std::string& dir);
  [[nodiscard]] std::uint64_t records() const { return records_; }
  [[nodiscard]] Result<Bytes32> Read(std::uint64_t index) const;
  [[nodiscard]] HashRead Reader() const {
    return [this](std::uint64_t i) { return Read(i); };
  }

 private:
  std::shared_ptr<int> fd_;
  std::string path_;
  std::uint64_t records_ = 0;
  std::uint64_t hashes_ = 0;
};

}  // namespace cordon::audit::internal
