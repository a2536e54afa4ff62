// Hostile inputs: every tamper class named in the issue, each with the
// failure it must produce, and the exhaustive "any single-byte change" sweep.
#include <fcntl.h>

#include "cordon/unique_fd.h"
#include "sealed_test_util.h"

namespace cordon::sealed::testing {
namespace {

class Tamper : public SealedFixture {
 protected:
  static constexpr std::uint32_t kChunk = 64;
  static constexpr std::size_t kRecord = kChunk + kTagBytes;

  void SetUp() override {
    SealedFixture::SetUp();
    plain_ = RandomBytes(4 * kChunk + 10);  // 5 chunks: 4 full + 1 short final
    sealed_ = Seal(plain_, kChunk);
    bytes_ = ReadAll(sealed_);
    UniqueFd fd(::open(sealed_.c_str(), O_RDONLY));
    auto info = OpenSealed(fd.get());
    ASSERT_TRUE(info);
    header_ = info->header;
    ASSERT_EQ(info->chunks, 5u);
  }

  std::size_t ChunkAt(std::size_t i) const { return header_.header_bytes + i * kRecord; }

  // Writes `bytes` as a sealed file and unseals it, expecting `code`.
  Error Expect(const std::string& bytes, Errc code) {
    const std::string path = Path("tampered.sealed");
    WriteAll(path, bytes);
    auto r = Unseal(path);
    EXPECT_FALSE(r) << "tampered file unsealed";
    if (r) return Error{Errc::kInternal, "unsealed"};
    EXPECT_EQ(r.error().code, code) << ErrcName(r.error().code) << ": " << r.error().message;
    return r.error();
  }

  std::string plain_, sealed_, bytes_;
  Header header_;
};

TEST_F(Tamper, NotASealedFile) {
  Expect("hello, this is plain text\n", Errc::kWrongFormat);
  Expect("", Errc::kWrongFormat);
}

TEST_F(Tamper, UnsupportedVersion) {
  std::string b = bytes_;
  b[9] = 2;
  const Error e = Expect(b, Errc::kUnsupported);
  EXPECT_NE(e.message.find("version 2"), std::string::npos) << e.message;
}

TEST_F(Tamper, BitFlipsInTheHeader) {
  // salt, commitment, chunk size -> commitment mismatch; MAC -> MAC mismatch.
  for (std::size_t at : {16u, 47u, 48u, 79u}) {
    std::string b = bytes_;
    b[at] ^= 0x01;
    Expect(b, Errc::kTampered);
  }
  std::string mac = bytes_;
  mac[header_.header_bytes - 1] = static_cast<char>(mac[header_.header_bytes - 1] ^ 0x80);
  Expect(mac, Errc::kTampered);
  // The dataset name: the KMS refuses the unwrap (bound as associated data).
  std::string dataset = bytes_;
  const std::size_t ds = bytes_.find("customers");
  ASSERT_NE(ds, std::string::npos);
  dataset[ds] = 'C';
  Expect(dataset, Errc::kTampered);
  // The key version: there is no version 2 of the key.
  std::string version = bytes_;
  const std::size_t v = 80 + 1 + header_.key.ToString().size() + 3;
  version[v] = 2;
  Expect(version, Errc::kKeyUnknown);
}

TEST_F(Tamper, BitFlipInEachChunkAndTag) {
  for (std::size_t i = 0; i < 5; ++i) {
    const std::size_t len = i < 4 ? kRecord : 10 + kTagBytes;
    for (std::size_t at : {ChunkAt(i), ChunkAt(i) + len - 1}) {  // first ciphertext byte, last tag byte
      std::string b = bytes_;
      b[at] ^= 0x04;
      const Error e = Expect(b, Errc::kIntegrity);
      EXPECT_NE(e.message.find("chunk " + std::to_string(i) + " failed authentication"), std::string::npos)
          << e.message;
    }
  }
}

TEST_F(Tamper, SwapTwoChunks) {
  std::string b = bytes_;
  std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(ChunkAt(1)), kRecord, b.begin() + static_cast<std::ptrdiff_t>(ChunkAt(2)));
  std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(ChunkAt(2)), kRecord, b.begin() + static_cast<std::ptrdiff_t>(ChunkAt(1)));
  const Error e = Expect(b, Errc::kIntegrity);
  EXPECT_NE(e.message.find("chunk 1 "), std::string::npos) << e.message;
}

TEST_F(Tamper, DuplicateAChunk) {
  std::string b = bytes_.substr(0, ChunkAt(2)) + bytes_.substr(ChunkAt(1), kRecord) + bytes_.substr(ChunkAt(2));
  Expect(b, Errc::kIntegrity);
}

TEST_F(Tamper, DropTheLastChunk) {
  const Error e = Expect(bytes_.substr(0, ChunkAt(4)), Errc::kTruncated);
  EXPECT_NE(e.message.find("chunk 3"), std::string::npos) << e.message;
  Expect(bytes_.substr(0, ChunkAt(0)), Errc::kTruncated);  // header only
  Expect(bytes_.substr(0, 40), Errc::kTruncated);          // inside the header
}

TEST_F(Tamper, AppendAChunk) {
  // A whole chunk (a copy of one, or junk) after the short final chunk.
  Expect(bytes_ + bytes_.substr(ChunkAt(1), kRecord), Errc::kTrailingData);
  Expect(bytes_ + std::string(kRecord, 'x'), Errc::kTrailingData);
  Expect(bytes_ + std::string(3 * kRecord, 'x'), Errc::kTrailingData);
  // After a full final chunk any number of bytes is recognised.
  const std::string full = ReadAll(Seal(RandomBytes(2 * kChunk), kChunk, "full"));
  Expect(full + "x", Errc::kTrailingData);
  Expect(full + full.substr(full.size() - kRecord), Errc::kTrailingData);
  // A byte count that shifts a short final chunk out of alignment is still
  // refused, as an authentication failure of the final chunk (documented).
  Expect(bytes_ + "x", Errc::kIntegrity);
}

TEST_F(Tamper, SpliceHeaderFromAnotherFile) {
  // Same key, same dataset, same chunk size: only the DEK/salt differ.
  const std::string other = ReadAll(Seal(RandomBytes(plain_.size(), 99), kChunk, "other"));
  const std::string spliced = other.substr(0, header_.header_bytes) + bytes_.substr(header_.header_bytes);
  const Error e = Expect(spliced, Errc::kIntegrity);
  EXPECT_NE(e.message.find("chunk 0 "), std::string::npos) << e.message;
  // A header of another dataset: also verifies on its own, the chunks do not.
  const std::string third = ReadAll(Seal(RandomBytes(plain_.size(), 98), kChunk, "third", "other-dataset"));
  UniqueFd fd(::open(Path("third.sealed").c_str(), O_RDONLY));
  auto info = OpenSealed(fd.get());
  ASSERT_TRUE(info);
  Expect(third.substr(0, info->header.header_bytes) + bytes_.substr(header_.header_bytes), Errc::kIntegrity);
}

// The "done when" property: any single-byte change anywhere fails and leaves nothing.
TEST_F(Tamper, AnySingleByteChangeFailsAndLeavesNothing) {
  for (std::size_t at = 0; at < bytes_.size(); ++at) {
    for (int mask : {0x01, 0x80, 0xff}) {
      std::string b = bytes_;
      b[at] = static_cast<char>(b[at] ^ mask);
      const std::string path = Path("flip.sealed");
      WriteAll(path, b);
      auto r = Unseal(path);  // asserts no output and no temp file on failure
      ASSERT_FALSE(r) << "byte " << at << " ^ " << mask << " still unsealed";
    }
  }
}

TEST_F(Tamper, EveryTruncationFailsAndLeavesNothing) {
  for (std::size_t n = 0; n < bytes_.size(); ++n) {
    const std::string path = Path("cut.sealed");
    WriteAll(path, bytes_.substr(0, n));
    auto r = Unseal(path);
    ASSERT_FALSE(r) << "prefix of " << n << " bytes unsealed";
  }
}

TEST_F(Tamper, UnsealToStdoutWritesNothingForACorruptFile) {
  std::string b = bytes_;
  b[ChunkAt(4)] ^= 1;  // the last chunk: the first chunks would verify
  WriteAll(Path("late.sealed"), b);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK), 0);
  const int saved = ::dup(STDOUT_FILENO);
  ::dup2(p[1], STDOUT_FILENO);
  auto r = UnsealFile(Path("late.sealed"), "-", kms_, Replace::kRefuse);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  ::close(p[1]);
  char c;
  EXPECT_EQ(::read(p[0], &c, 1), 0) << "stdout received plaintext of a corrupt file";
  ::close(p[0]);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kIntegrity);
}

}  // namespace
}  // namespace cordon::sealed::testing
