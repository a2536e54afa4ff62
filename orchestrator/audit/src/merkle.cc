// RFC 6962 Merkle tree over the audit log's records: hashes, stored-hash
// layout (tlog's), proofs and their verification (RFC 9162).
#include "merkle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>

namespace cordon::audit::internal {
namespace {

std::string_view View(const Bytes32& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// The largest power of two strictly below n (n >= 2).
std::uint64_t SplitPoint(std::uint64_t n) { return std::bit_floor(n - 1); }

// MTH of records [lo, hi), lo aligned as RFC 6962's recursion leaves it: the
// range is a run of complete subtrees of decreasing size, folded right to left.
Result<Bytes32> SubtreeHash(std::uint64_t lo, std::uint64_t hi, const HashRead& read) {
  std::vector<Bytes32> parts;
  while (lo < hi) {
    int level = static_cast<int>(std::bit_width(hi - lo)) - 1;
    while (level > 0 && (lo & ((std::uint64_t{1} << level) - 1)) != 0) --level;
    auto h = read(StoredHashIndex(level, lo >> level));
    if (!h) return std::unexpected(h.error());
    parts.push_back(*h);
    lo += std::uint64_t{1} << level;
  }
  if (parts.empty()) return Sha256("");
  Bytes32 h = parts.back();
  for (std::size_t i = parts.size() - 1; i-- > 0;) h = NodeHash(parts[i], h);
  return h;
}

Status Path(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, const HashRead& read, std::vector<Bytes32>& out) {
  if (hi - lo <= 1) return {};
  const std::uint64_t k = SplitPoint(hi - lo);
  if (m < lo + k) {
    if (auto ok = Path(m, lo, lo + k, read, out); !ok) return ok;
    auto h = SubtreeHash(lo + k, hi, read);
    if (!h) return std::unexpected(h.error());
    out.push_back(*h);
  } else {
    if (auto ok = Path(m, lo + k, hi, read, out); !ok) return ok;
    auto h = SubtreeHash(lo, lo + k, read);
    if (!h) return std::unexpected(h.error());
    out.push_back(*h);
  }
  return {};
}

Status SubProof(std::uint64_t m, std::uint64_t lo, std::uint64_t hi, bool whole, const HashRead& read,
                std::vector<Bytes32>& out) {
  const std::uint64_t n = hi - lo;
  if (m == n) {
    if (whole) return {};
    auto h = SubtreeHash(lo, hi, read);
    if (!h) return std::unexpected(h.error());
    out.push_back(*h);
    return {};
  }
  const std::uint64_t k = SplitPoint(n);
  if (m <= k) {
    if (auto ok = SubProof(m, lo, lo + k, whole, read, out); !ok) return ok;
    auto h = SubtreeHash(lo + k, hi, read);
    if (!h) return std::unexpected(h.error());
    out.push_back(*h);
  } else {
    if (auto ok = SubProof(m - k, lo + k, hi, false, read, out); !ok) return ok;
    auto h = SubtreeHash(lo, lo + k, read);
    if (!h) return std::unexpected(h.error());
    out.push_back(*h);
  }
  return {};
}

}  // namespace

Bytes32 LeafHash(std::string_view record) { return Sha256PublicParts({std::string_view("\0", 1), record}); }

Bytes32 NodeHash(const Bytes32& left, const Bytes32& right) {
  return Sha256PublicParts({std::string_view("\x01", 1), View(left), View(right)});
}

std::uint64_t StoredHashIndex(int level, std::uint64_t n) {
  // Level L's n'th hash is stored right after level L+1's (2n+1)'th; level 0's
  // n'th at n + n/2 + n/4 + ... (tlog.StoredHashIndex).
  for (int l = level; l > 0; --l) n = 2 * n + 1;
  std::uint64_t i = 0;
  for (; n > 0; n >>= 1) i += n;
  return i + static_cast<std::uint64_t>(level);
}

std::uint64_t StoredHashCount(std::uint64_t records) {
  if (records == 0) return 0;
  std::uint64_t count = StoredHashIndex(0, records - 1) + 1;
  for (std::uint64_t i = records - 1; (i & 1) != 0; i >>= 1) ++count;
  return count;
}

std::optional<std::uint64_t> RecordsForHashCount(std::uint64_t count) {
  // StoredHashCount(n) = 2n - popcount(n): n is within [count/2, count/2 + 64].
  const std::uint64_t base = count / 2;
  for (std::uint64_t n = base; n <= base + 65; ++n) {
    const std::uint64_t c = StoredHashCount(n);
    if (c == count) return n;
    if (c > count) break;
  }
  return std::nullopt;
}

void Frontier::Append(const Bytes32& leaf, std::vector<Bytes32>* stored) {
  Bytes32 h = leaf;
  if (stored != nullptr) stored->push_back(h);
  for (std::uint64_t i = size_; (i & 1) != 0; i >>= 1) {
    h = NodeHash(stack_.back(), h);
    stack_.pop_back();
    if (stored != nullptr) stored->push_back(h);
  }
  stack_.push_back(h);
  ++size_;
}

void Frontier::AppendSubtree(const Bytes32& hash, int level) {
  Bytes32 h = hash;
  for (std::uint64_t i = size_ >> level; (i & 1) != 0; i >>= 1) {
    h = NodeHash(stack_.back(), h);
    stack_.pop_back();
  }
  stack_.push_back(h);
  size_ += std::uint64_t{1} << level;
}

void AlignedSubtrees(std::uint64_t from, std::span<const Bytes32> leaves, std::vector<Subtree>& out) {
  std::vector<Bytes32> level_hashes;
  std::size_t k = 0;
  while (k < leaves.size()) {
    const std::uint64_t at = from + k;
    int level = static_cast<int>(std::bit_width(leaves.size() - k)) - 1;
    while (level > 0 && (at & ((std::uint64_t{1} << level) - 1)) != 0) --level;
    const std::size_t width = std::size_t{1} << level;
    level_hashes.assign(leaves.begin() + static_cast<std::ptrdiff_t>(k),
                        leaves.begin() + static_cast<std::ptrdiff_t>(k + width));
    for (std::size_t w = width; w > 1; w /= 2) {
      for (std::size_t j = 0; j < w / 2; ++j) level_hashes[j] = NodeHash(level_hashes[2 * j], level_hashes[2 * j + 1]);
    }
    out.push_back({level_hashes[0], level});
    k += width;
  }
}

Bytes32 Frontier::Root() const {
  if (stack_.empty()) return Sha256("");
  Bytes32 h = stack_.back();
  for (std::size_t i = stack_.size() - 1; i-- > 0;) h = NodeHash(stack_[i], h);
  return h;
}

Result<Frontier> Frontier::Load(std::uint64_t size, const std::function<Result<Bytes32>(std::uint64_t)>& read) {
  Frontier f;
  std::uint64_t start = 0;
  for (int level = 63; level >= 0; --level) {
    if (((size >> level) & 1) == 0) continue;
    auto h = read(StoredHashIndex(level, start >> level));
    if (!h) return std::unexpected(h.error());
    f.stack_.push_back(*h);
    start += std::uint64_t{1} << level;
  }
  f.size_ = size;
  return f;
}

Result<Bytes32> TreeHash(std::uint64_t size, const HashRead& read) { return SubtreeHash(0, size, read); }

Result<std::vector<Bytes32>> InclusionPath(std::uint64_t index, std::uint64_t size, const HashRead& read) {
  if (index >= size) {
    return Fail(Errc::kInvalidArgument, "entry " + std::to_string(index) + " is not in a tree of size " +
                                            std::to_string(size));
  }
  std::vector<Bytes32> out;
  if (auto ok = Path(index, 0, size, read, out); !ok) return std::unexpected(ok.error());
  return out;
}

Result<std::vector<Bytes32>> ConsistencyPath(std::uint64_t old_size, std::uint64_t new_size, const HashRead& read) {
  if (old_size < 1 || old_size > new_size) {
    return Fail(Errc::kInvalidArgument, "no consistency proof from size " + std::to_string(old_size) + " to " +
                                            std::to_string(new_size) + " (need 1 <= old <= new)");
  }
  std::vector<Bytes32> out;
  if (old_size == new_size) return out;
  if (auto ok = SubProof(old_size, 0, new_size, true, read, out); !ok) return std::unexpected(ok.error());
  return out;
}

bool VerifyInclusion(std::uint64_t index, std::uint64_t size, const Bytes32& leaf, std::span<const Bytes32> proof,
                     const Bytes32& root) {
  if (index >= size) return false;
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Bytes32 r = leaf;
  for (const Bytes32& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && Equal32(r, root);
}

bool VerifyConsistency(std::uint64_t old_size, std::uint64_t new_size, const Bytes32& old_root,
                       const Bytes32& new_root, std::span<const Bytes32> proof) {
  if (old_size < 1 || old_size > new_size) return false;
  if (old_size == new_size) return proof.empty() && Equal32(old_root, new_root);
  std::vector<Bytes32> path;
  if (std::has_single_bit(old_size)) path.push_back(old_root);
  path.insert(path.end(), proof.begin(), proof.end());
  if (path.empty()) return false;
  std::uint64_t fn = old_size - 1;
  std::uint64_t sn = new_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Bytes32 fr = path[0];
  Bytes32 sr = path[0];
  for (std::size_t i = 1; i < path.size(); ++i) {
    const Bytes32& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && Equal32(fr, old_root) && Equal32(sr, new_root);
}

Result<TreeReader> TreeReader::Open(const std::string& dir) {
  TreeReader r;
  r.path_ = dir + "/" + kTreeFile;
  const int fd = ::open(r.path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return FailErrno("open " + r.path_);
  r.fd_ = std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  struct stat st{};
  if (::fstat(fd, &st) != 0) return FailErrno("stat " + r.path_);
  if (!S_ISREG(st.st_mode)) return Fail(Errc::kInvalidData, r.path_ + ": not a regular file");
  r.hashes_ = static_cast<std::uint64_t>(st.st_size) / 32;
  // A writer appends a record's hashes in one write; take the largest whole tree.
  auto records = RecordsForHashCount(r.hashes_);
  while (!records && r.hashes_ > 0) records = RecordsForHashCount(--r.hashes_);
  r.records_ = records.value_or(0);
  r.hashes_ = StoredHashCount(r.records_);
  return r;
}

Result<Bytes32> TreeReader::Read(std::uint64_t index) const {
  if (index >= hashes_) return Fail(Errc::kInvalidArgument, path_ + ": hash " + std::to_string(index) + " beyond the tree");
  Bytes32 h{};
  const ssize_t n = ::pread(*fd_, h.data(), 32, static_cast<off_t>(index * 32));
  if (n != 32) return n < 0 ? FailErrno("read " + path_) : Fail(Errc::kInvalidData, path_ + ": short read");
  return h;
}

}  // namespace cordon::audit::internal
