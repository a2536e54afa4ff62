// The audit log as a transparency log: the Merkle root of real logs against
// an independent RFC 6962 computation (OpenSSL's one-shot SHA256, recursive
// MTH), proofs for every (index, size) pair over edge sizes against the RFC's
// own recursive PATH/PROOF, the stored hashes rebuilt after damage, and the
// witness accepting growth and refusing rollback and forks.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "cordon/audit/audit.h"
#include "cordon/audit/tlog.h"
#include "cordon/audit/verify.h"
#include "internal.h"
#include "merkle.h"

namespace cordon::audit {
namespace {

namespace fs = std::filesystem;
using internal::Bytes32;

// ---- an independent RFC 6962 reference (no code shared with merkle.cc) ----
Bytes32 RefSha(const std::string& data) {
  Bytes32 out{};
  ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}
std::string Raw(const Bytes32& h) { return {reinterpret_cast<const char*>(h.data()), 32}; }
Bytes32 RefLeaf(const std::string& record) { return RefSha(std::string(1, '\0') + record); }
Bytes32 RefNode(const Bytes32& l, const Bytes32& r) { return RefSha(std::string(1, '\x01') + Raw(l) + Raw(r)); }
std::uint64_t RefSplit(std::uint64_t n) {
  std::uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
// MTH(D[lo:hi])
Bytes32 RefMth(const std::vector<Bytes32>& leaves, std::uint64_t lo, std::uint64_t hi) {
  if (hi == lo) return RefSha("");
  if (hi - lo == 1) return leaves[lo];
  const std::uint64_t k = RefSplit(hi - lo);
  return RefNode(RefMth(leaves, lo, lo + k), RefMth(leaves, lo + k, hi));
}
// PATH(m, D[lo:hi]) (RFC 6962 2.1.1)
std::vector<Bytes32> RefPath(const std::vector<Bytes32>& d, std::uint64_t m, std::uint64_t lo, std::uint64_t hi) {
  if (hi - lo == 1) return {};
  const std::uint64_t k = RefSplit(hi - lo);
  std::vector<Bytes32> out;
  if (m < k) {
    out = RefPath(d, m, lo, lo + k);
    out.push_back(RefMth(d, lo + k, hi));
  } else {
    out = RefPath(d, m - k, lo + k, hi);
    out.push_back(RefMth(d, lo, lo + k));
  }
  return out;
}
// SUBPROOF(m, D[lo:hi], b) (RFC 6962 2.1.2)
std::vector<Bytes32> RefSubproof(const std::vector<Bytes32>& d, std::uint64_t m, std::uint64_t lo, std::uint64_t hi,
                                 bool b) {
  const std::uint64_t n = hi - lo;
  if (m == n) return b ? std::vector<Bytes32>{} : std::vector<Bytes32>{RefMth(d, lo, hi)};
  const std::uint64_t k = RefSplit(n);
  std::vector<Bytes32> out;
  if (m <= k) {
    out = RefSubproof(d, m, lo, lo + k, b);
    out.push_back(RefMth(d, lo + k, hi));
  } else {
    out = RefSubproof(d, m - k, lo + k, hi, false);
    out.push_back(RefMth(d, lo, lo + k));
  }
  return out;
}

std::vector<std::uint64_t> EdgeSizes(std::uint64_t max) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t p = 1; p <= max; p *= 2) {
    for (std::uint64_t s : {p - 1, p, p + 1}) {
      if (s >= 1 && s <= max && (out.empty() || out.back() < s)) out.push_back(s);
    }
  }
  return out;
}

class MemoryTree {
 public:
  explicit MemoryTree(std::uint64_t n) {
    std::mt19937 rng(42);
    for (std::uint64_t i = 0; i < n; ++i) {
      leaves.push_back(RefLeaf("record " + std::to_string(i) + " " + std::to_string(rng())));
      frontier.Append(leaves.back(), &stored);
    }
  }
  internal::HashRead Reader() const {
    return [this](std::uint64_t i) -> Result<Bytes32> {
      if (i >= stored.size()) return Fail(Errc::kInvalidArgument, "beyond");
      return stored[i];
    };
  }
  std::vector<Bytes32> leaves;
  std::vector<Bytes32> stored;
  internal::Frontier frontier;
};

TEST(AuditMerkle, StoredHashLayoutAndRootsMatchTheReference) {
  MemoryTree t(300);
  EXPECT_EQ(t.stored.size(), internal::StoredHashCount(300));
  EXPECT_EQ(internal::StoredHashCount(300), 2 * 300 - static_cast<std::uint64_t>(__builtin_popcountll(300)));
  for (std::uint64_t n = 0; n <= 300; ++n) {
    auto root = internal::TreeHash(n, t.Reader());
    ASSERT_TRUE(root);
    ASSERT_EQ(Raw(*root), Raw(RefMth(t.leaves, 0, n))) << "size " << n;
    EXPECT_EQ(internal::RecordsForHashCount(internal::StoredHashCount(n)), n);
  }
  EXPECT_EQ(Raw(t.frontier.Root()), Raw(RefMth(t.leaves, 0, 300)));
  // Level-L hashes sit where StoredHashIndex says: complete subtrees.
  for (int level = 0; level <= 8; ++level) {
    for (std::uint64_t i = 0; (i + 1) << level <= 300; ++i) {
      ASSERT_EQ(Raw(t.stored[internal::StoredHashIndex(level, i)]),
                Raw(RefMth(t.leaves, i << level, (i + 1) << level)));
    }
  }
  auto edge = internal::Frontier::Load(173, t.Reader());
  ASSERT_TRUE(edge);
  EXPECT_EQ(Raw(edge->Root()), Raw(RefMth(t.leaves, 0, 173)));
}

// The verifier's shortcut: a range's aligned subtrees appended whole give
// the same roots as its leaves one by one, for ranges split at any points.
TEST(AuditMerkle, AlignedSubtreesAppendLikeTheirLeaves) {
  MemoryTree t(300);
  for (const std::uint64_t cut : {0u, 1u, 3u, 64u, 100u, 128u, 255u}) {
    for (const std::uint64_t len : {1u, 2u, 5u, 16u, 37u, 45u}) {
      internal::Frontier f;
      for (std::uint64_t i = 0; i < cut; ++i) f.Append(t.leaves[i]);
      std::vector<internal::Subtree> parts;
      internal::AlignedSubtrees(cut, std::span(t.leaves).subspan(cut, len), parts);
      for (const auto& p : parts) {
        ASSERT_EQ(f.size() % (std::uint64_t{1} << p.level), 0u);
        f.AppendSubtree(p.hash, p.level);
      }
      ASSERT_EQ(f.size(), cut + len);
      ASSERT_EQ(Raw(f.Root()), Raw(RefMth(t.leaves, 0, cut + len))) << "from " << cut << " len " << len;
    }
  }
}

TEST(AuditMerkle, InclusionProofsForEveryIndexAtEdgeSizes) {
  MemoryTree t(130);
  std::uint64_t checked = 0;
  for (std::uint64_t size : EdgeSizes(130)) {
    const Bytes32 root = RefMth(t.leaves, 0, size);
    for (std::uint64_t i = 0; i < size; ++i) {
      auto proof = internal::InclusionPath(i, size, t.Reader());
      ASSERT_TRUE(proof);
      const auto ref = RefPath(t.leaves, i, 0, size);
      ASSERT_EQ(proof->size(), ref.size()) << i << "/" << size;
      for (std::size_t k = 0; k < ref.size(); ++k) ASSERT_EQ(Raw((*proof)[k]), Raw(ref[k]));
      ASSERT_TRUE(internal::VerifyInclusion(i, size, t.leaves[i], *proof, root)) << i << "/" << size;
      // Wrong leaf, wrong index, a flipped bit: refused.
      EXPECT_FALSE(internal::VerifyInclusion(i, size, t.leaves[(i + 1) % 130], *proof, root));
      if (size > 1) {
        EXPECT_FALSE(internal::VerifyInclusion((i + 1) % size, size, t.leaves[i], *proof, root));
      }
      if (!proof->empty()) {
        auto bad = *proof;
        bad.back()[7] ^= 1;
        EXPECT_FALSE(internal::VerifyInclusion(i, size, t.leaves[i], bad, root));
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 759u);  // every index of every edge size up to 130
  EXPECT_FALSE(internal::InclusionPath(5, 5, t.Reader()));
}

TEST(AuditMerkle, ConsistencyProofsBetweenEdgeSizes) {
  MemoryTree t(130);
  const auto sizes = EdgeSizes(130);
  for (std::uint64_t m : sizes) {
    for (std::uint64_t n : sizes) {
      if (m > n) continue;
      auto proof = internal::ConsistencyPath(m, n, t.Reader());
      ASSERT_TRUE(proof);
      const auto ref = m == n ? std::vector<Bytes32>{} : RefSubproof(t.leaves, m, 0, n, true);
      ASSERT_EQ(proof->size(), ref.size()) << m << "->" << n;
      for (std::size_t k = 0; k < ref.size(); ++k) ASSERT_EQ(Raw((*proof)[k]), Raw(ref[k]));
      const Bytes32 old_root = RefMth(t.leaves, 0, m);
      const Bytes32 new_root = RefMth(t.leaves, 0, n);
      ASSERT_TRUE(internal::VerifyConsistency(m, n, old_root, new_root, *proof)) << m << "->" << n;
      if (m < n) {
        // Another history of the same size: the proof fails.
        Bytes32 forged = old_root;
        forged[0] ^= 1;
        EXPECT_FALSE(internal::VerifyConsistency(m, n, forged, new_root, *proof)) << m << "->" << n;
        EXPECT_FALSE(internal::VerifyConsistency(m, n, old_root, forged, *proof)) << m << "->" << n;
      }
    }
  }
  EXPECT_FALSE(internal::ConsistencyPath(0, 5, t.Reader()));
  EXPECT_FALSE(internal::ConsistencyPath(6, 5, t.Reader()));
}

// ---- real logs ------------------------------------------------------------------
std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AuditTlogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("cordon-tlog-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "audit");
    dir_ = (root_ / "audit").string();
    auto keys = CreateAuditKeys(dir_, (root_ / "verifier.key").string());
    ASSERT_TRUE(keys) << keys.error().message;
  }
  void TearDown() override { fs::remove_all(root_); }

  void Append(const std::string& dir, int n, const std::string& job = "J1") {
    auto log = AuditLog::Open({.dir = dir});
    ASSERT_TRUE(log) << log.error().message;
    for (int i = 0; i < n; ++i) {
      auto seq = (*log)->Append({.action = "job.step", .job = job, .outcome = "ok", .details = {{"i", i}}, .actor = {}});
      ASSERT_TRUE(seq) << seq.error().message;
    }
  }
  std::string Checkpoint(const std::string& dir) {
    auto log = AuditLog::Open({.dir = dir});
    EXPECT_TRUE(log);
    auto note = (*log)->Checkpoint();
    EXPECT_TRUE(note) << note.error().message;
    return note ? *note : "";
  }
  // Every record of the log (its lines without '\n'), in order.
  std::vector<Bytes32> Leaves(const std::string& dir) {
    std::vector<Bytes32> out;
    auto segs = internal::ListSegments(dir);
    for (const auto& s : *segs) {
      std::istringstream in(ReadAll(s.path));
      for (std::string line; std::getline(in, line);) out.push_back(RefLeaf(line));
    }
    return out;
  }
  static std::pair<std::uint64_t, std::string> SizeRoot(const std::string& note) {
    std::istringstream in(note);
    std::string origin, size, root;
    std::getline(in, origin);
    std::getline(in, size);
    std::getline(in, root);
    return {std::stoull(size), root};
  }
  static std::string B64(const Bytes32& h) { return internal::Base64(h.data(), 32); }

  fs::path root_;
  std::string dir_;
};

TEST_F(AuditTlogTest, CheckpointSignsTheCurrentHeadWithTheRfc6962Root) {
  Append(dir_, 148);  // 149 entries with log.created
  const std::string note = Checkpoint(dir_);
  const auto [size, root] = SizeRoot(note);
  EXPECT_EQ(size, 149u);
  const auto leaves = Leaves(dir_);
  ASSERT_EQ(leaves.size(), 149u);
  EXPECT_EQ(root, B64(RefMth(leaves, 0, 149)));
  EXPECT_EQ(LatestCheckpoint(dir_).value_or(""), note);  // and it is stored
  auto report = Verify({dir_, (root_ / "verifier.key").string(), std::nullopt, {}, 0, 0});
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->failure) << report->failure->detail;
  EXPECT_EQ(report->root, root);
}

TEST_F(AuditTlogTest, ProofsFromTheStoredTreeVerify) {
  Append(dir_, 99);  // 100 entries
  const auto leaves = Leaves(dir_);
  for (std::uint64_t size : {1ull, 2ull, 31ull, 32ull, 33ull, 64ull, 99ull, 100ull}) {
    for (std::uint64_t i = 0; i < size; i += 7) {
      auto p = ProveInclusion(dir_, i, size);
      ASSERT_TRUE(p) << p.error().message;
      EXPECT_EQ(p->root, B64(RefMth(leaves, 0, size)));
      EXPECT_EQ(p->leaf, B64(leaves[i]));
      std::vector<Bytes32> path;
      for (const auto& h : p->proof) {
        auto raw = internal::Unbase64(h);
        Bytes32 b{};
        std::copy(raw->begin(), raw->end(), b.begin());
        path.push_back(b);
      }
      EXPECT_TRUE(internal::VerifyInclusion(i, size, leaves[i], path, RefMth(leaves, 0, size)));
    }
  }
  auto now = ProveInclusion(dir_, 3, std::nullopt);
  ASSERT_TRUE(now);
  EXPECT_EQ(now->size, 100u);
  auto c = ProveConsistency(dir_, 37, std::nullopt);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->new_size, 100u);
  EXPECT_EQ(c->old_root, B64(RefMth(leaves, 0, 37)));
  EXPECT_FALSE(ProveInclusion(dir_, 100, std::nullopt));
  EXPECT_FALSE(ProveConsistency(dir_, 50, 101));
}

TEST_F(AuditTlogTest, DamagedOrMissingTreeHashesAreRebuiltFromTheLog) {
  Append(dir_, 40);
  const std::string tree = dir_ + "/" + internal::kTreeFile;
  // Lost entirely (a log from before the tree), then garbage past the last sync point.
  fs::remove(tree);
  Append(dir_, 5);
  {
    std::fstream f(tree, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(tree) - 64));
    f.write(std::string(64, '\0').data(), 64);
  }
  Append(dir_, 5);
  const auto leaves = Leaves(dir_);
  const auto [size, root] = SizeRoot(Checkpoint(dir_));
  EXPECT_EQ(size, leaves.size());
  EXPECT_EQ(root, B64(RefMth(leaves, 0, leaves.size())));
  EXPECT_EQ(fs::file_size(tree), internal::StoredHashCount(leaves.size()) * 32);
}

TEST_F(AuditTlogTest, TilesHoldTheStoredHashesAndEntries) {
  Append(dir_, 600);  // 601 entries: two full level-0 tiles and a partial one, one partial level-1 tile
  Checkpoint(dir_);
  const std::string out = (root_ / "tiles").string();
  auto r = ExportTiles(dir_, out);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->size, 601u);
  EXPECT_EQ(r->tiles, 4u);
  EXPECT_EQ(r->bundles, 3u);
  const auto leaves = Leaves(dir_);
  const std::string t0 = ReadAll(out + "/tile/0/001");
  ASSERT_EQ(t0.size(), 256u * 32);
  EXPECT_EQ(t0.substr(5 * 32, 32), Raw(leaves[256 + 5]));
  const std::string partial = ReadAll(out + "/tile/0/002.p/89");
  ASSERT_EQ(partial.size(), 89u * 32);
  const std::string level1 = ReadAll(out + "/tile/1/000.p/2");
  ASSERT_EQ(level1.size(), 64u);
  EXPECT_EQ(level1.substr(32), Raw(RefMth(leaves, 256, 512)));
  const std::string bundle = ReadAll(out + "/tile/entries/002.p/89");
  const auto len = static_cast<std::size_t>(static_cast<unsigned char>(bundle[0]) << 8 | static_cast<unsigned char>(bundle[1]));
  EXPECT_EQ(RefLeaf(bundle.substr(2, len)), leaves[512]);
  EXPECT_EQ(ReadAll(out + "/checkpoint"), LatestCheckpoint(dir_).value_or("?"));
}

class WitnessTest : public AuditTlogTest {
 protected:
  void SetUp() override {
    AuditTlogTest::SetUp();
    auto vkey = CreateWitnessKey((root_ / "witness.key").string(), "witness.example/w1");
    ASSERT_TRUE(vkey) << vkey.error().message;
    witness_vkey_ = *vkey;
  }
  WitnessResult Witness(const std::string& note, std::optional<std::string> proof = std::nullopt) {
    auto r = audit::Witness({dir_ + "/log.identity", (root_ / "witness-state").string(),
                             (root_ / "witness.key").string(), note, proof});
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : WitnessResult{};
  }
  static std::string ProofJson(const ConsistencyProof& p) {
    std::string out = "{\"old_size\":" + std::to_string(p.old_size) + ",\"new_size\":" + std::to_string(p.new_size) +
                      ",\"proof\":[";
    for (std::size_t i = 0; i < p.proof.size(); ++i) out += (i ? ",\"" : "\"") + p.proof[i] + "\"";
    return out + "]}";
  }
  std::string witness_vkey_;
};

TEST_F(WitnessTest, AcceptsAGrownLogAndTheCosignatureVerifies) {
  Append(dir_, 10);
  const std::string first = Checkpoint(dir_);
  auto r1 = Witness(first);
  ASSERT_FALSE(r1.refused) << r1.message;
  Append(dir_, 20);
  const std::string second = Checkpoint(dir_);
  EXPECT_EQ(Witness(second).refused, WitnessRefusal::kProofNeeded);
  auto proof = ProveConsistency(dir_, SizeRoot(first).first, SizeRoot(second).first);
  ASSERT_TRUE(proof);
  auto r2 = Witness(second, ProofJson(*proof));
  ASSERT_FALSE(r2.refused) << r2.message;
  EXPECT_EQ(r2.previous_size, 11u);
  EXPECT_TRUE(r2.cosignature.starts_with("\xe2\x80\x94 witness.example/w1 "));
  // verify --checkpoint with the cosigned note: 1 witness required and present.
  const std::string cosigned = (root_ / "cosigned.cp").string();
  std::ofstream(cosigned) << second.substr(0, second.size()) << "";
  {
    std::string text = second;
    text.insert(text.size(), r2.cosignature);  // signature lines end the note
    std::ofstream(cosigned, std::ios::trunc) << text;
  }
  auto ok = Verify({dir_, std::nullopt, cosigned, {witness_vkey_}, 1, 0});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_FALSE(ok->failure) << ok->failure->detail;
  EXPECT_EQ(ok->witnesses, 1u);
  // Requiring a second witness that did not cosign fails.
  auto other = CreateWitnessKey((root_ / "w2.key").string(), "witness.example/w2");
  ASSERT_TRUE(other);
  auto two = Verify({dir_, std::nullopt, cosigned, {witness_vkey_, *other}, 2, 0});
  ASSERT_TRUE(two);
  ASSERT_TRUE(two->failure);
  EXPECT_EQ(two->failure->tamper, Tamper::kBadSignature);
  EXPECT_NE(two->failure->detail.find("1 valid witness cosignature(s); 2 required"), std::string::npos);
  // The plain note (no cosignature) does not satisfy one witness either.
  const std::string plain = (root_ / "plain.cp").string();
  std::ofstream(plain) << second;
  auto none = Verify({dir_, std::nullopt, plain, {witness_vkey_}, 1, 0});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->failure);
}

TEST_F(WitnessTest, RefusesRollbackAndForks) {
  Append(dir_, 10);
  const std::string old_note = Checkpoint(dir_);
  // A copy of the log as it is now: its later history will differ.
  const std::string fork = (root_ / "fork").string();
  fs::copy(dir_, fork, fs::copy_options::recursive);
  Append(dir_, 10, "J-real");
  const std::string real = Checkpoint(dir_);
  ASSERT_FALSE(Witness(old_note).refused);
  auto proof = ProveConsistency(dir_, 11, 21);
  ASSERT_FALSE(Witness(real, ProofJson(*proof)).refused);
  // Rolled back: the older checkpoint again.
  auto rollback = Witness(old_note);
  EXPECT_EQ(rollback.refused, WitnessRefusal::kRollback) << rollback.message;
  // Rewritten: same size, other entries (same key: root on the host re-signs).
  Append(fork, 10, "J-forged");
  const std::string forged = Checkpoint(fork);
  ASSERT_EQ(SizeRoot(forged).first, 21u);
  auto same_size = Witness(forged);
  EXPECT_EQ(same_size.refused, WitnessRefusal::kFork) << same_size.message;
  // Rewritten and grown, with a proof from the forged history.
  Append(fork, 5, "J-forged");
  const std::string grown = Checkpoint(fork);
  auto forged_proof = ProveConsistency(fork, 21, 26);
  auto r = Witness(grown, ProofJson(*forged_proof));
  EXPECT_EQ(r.refused, WitnessRefusal::kFork) << r.message;
  // A note signed by another log: bad signature.
  std::string tampered = real;
  tampered[tampered.find('\n') + 1] = '9';
  EXPECT_EQ(Witness(tampered).refused, WitnessRefusal::kBadSignature);
  // Nothing above changed what the witness holds: the real log still extends.
  Append(dir_, 3, "J-real");
  const std::string later = Checkpoint(dir_);
  EXPECT_FALSE(Witness(later, ProofJson(*ProveConsistency(dir_, 21, 24))).refused);
}

TEST_F(AuditTlogTest, CutTailAfterAFreshCheckpointFailsVerify) {
  Append(dir_, 20);
  const std::string saved = (root_ / "saved.cp").string();
  std::ofstream(saved) << Checkpoint(dir_);
  const std::string seg = dir_ + "/" + internal::SegmentName(0);
  std::string text = ReadAll(seg);
  text.erase(text.rfind('\n', text.size() - 2) + 1);  // the last entry
  std::ofstream(seg, std::ios::trunc) << text;
  fs::remove(dir_ + "/checkpoints");  // root removed the host's copies too
  std::ofstream(dir_ + "/checkpoints");
  auto r = Verify({dir_, (root_ / "verifier.key").string(), saved, {}, 0, 0});
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->failure);
  EXPECT_EQ(r->failure->tamper, Tamper::kTruncated);
}

TEST(AuditState, OldRecordWithoutTreeFieldDecodesAndKeyIsParsedInPlace) {
  internal::MacState s;
  s.seq = 7;
  s.key[0] = 0xab;
  s.checkpoint_size = 5;
  s.checkpoint_time_ns = 123;
  s.tree_synced = 4;
  const std::string rec = internal::EncodeState(s);
  ASSERT_EQ(rec.size(), internal::kStateRecordBytes);
  auto d = internal::DecodeState(rec);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->seq, 7u);
  EXPECT_EQ(d->tree_synced, 4u);
  EXPECT_EQ(d->key[0], 0xab);
  // The record as written before the tree (no tree_synced line).
  std::string old = "cordon-audit-mac-state-v1\nseq 7\nkey " + internal::Hex(s.key) +
                    "\ncheckpoint_size 5\ncheckpoint_time_ns 123\n";
  old += "check " + internal::Hex(internal::Sha256(old)) + "\n";
  old.resize(internal::kStateRecordBytes, '\0');
  auto o = internal::DecodeState(old);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->tree_synced, 0u);
  EXPECT_EQ(o->journal_seq, 7u);  // before the journal: everything durable in the segments
  EXPECT_EQ(o->journal_bytes, 0u);
  internal::MacState j = s;
  j.journal_seq = 3;
  j.journal_bytes = 1234;
  auto jd = internal::DecodeState(internal::EncodeState(j));
  ASSERT_TRUE(jd) << jd.error().message;
  EXPECT_EQ(jd->journal_seq, 3u);
  EXPECT_EQ(jd->journal_bytes, 1234u);
  j.journal_seq = 8;  // a journal cannot start after the next entry
  EXPECT_FALSE(internal::DecodeState(internal::EncodeState(j)));
  std::string bad = "cordon-audit-mac-state-v1\nseq x7\nkey " + internal::Hex(s.key) +
                    "\ncheckpoint_size 5\ncheckpoint_time_ns 123\n";
  bad += "check " + internal::Hex(internal::Sha256(bad)) + "\n";
  EXPECT_FALSE(internal::DecodeState(bad));
}

}  // namespace
}  // namespace cordon::audit
