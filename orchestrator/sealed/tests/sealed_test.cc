// Round trips, rotation, disabling and the streaming API of sealed files.
#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "cordon/unique_fd.h"
#include "sealed_test_util.h"

namespace cordon::sealed::testing {
namespace {

class RoundTrip : public SealedFixture, public ::testing::WithParamInterface<std::pair<std::size_t, std::uint32_t>> {};

TEST_P(RoundTrip, SealThenUnsealGivesTheSameBytes) {
  const auto [size, chunk] = GetParam();
  const std::string plain = RandomBytes(size, static_cast<unsigned>(size));
  const std::string sealed = Seal(plain, chunk);
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);

  UniqueFd fd(::open(sealed.c_str(), O_RDONLY));
  auto info = OpenSealed(fd.get());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->plaintext_bytes, size);
  EXPECT_EQ(info->chunks, size == 0 ? 1 : (size + chunk - 1) / chunk);
  EXPECT_EQ(info->header.dataset, "customers");
  EXPECT_EQ(info->header.key.ToString(), "kms://local/k");
  EXPECT_EQ(info->header.kek_version, 1u);
}

constexpr std::uint32_t kSmall = 64;
constexpr std::uint32_t kMiB = 1u << 20;
INSTANTIATE_TEST_SUITE_P(
    Sizes, RoundTrip,
    ::testing::Values(std::pair<std::size_t, std::uint32_t>{0, kSmall}, std::pair<std::size_t, std::uint32_t>{1, kSmall},
                      std::pair<std::size_t, std::uint32_t>{kSmall - 1, kSmall},
                      std::pair<std::size_t, std::uint32_t>{kSmall, kSmall},
                      std::pair<std::size_t, std::uint32_t>{kSmall + 1, kSmall},
                      std::pair<std::size_t, std::uint32_t>{10 * kSmall + 7, kSmall},
                      std::pair<std::size_t, std::uint32_t>{0, kMiB}, std::pair<std::size_t, std::uint32_t>{1, kMiB},
                      std::pair<std::size_t, std::uint32_t>{kMiB - 1, kMiB},
                      std::pair<std::size_t, std::uint32_t>{kMiB, kMiB},
                      std::pair<std::size_t, std::uint32_t>{kMiB + 1, kMiB},
                      // Many batches in both lanes: 4 MiB batches, 1 MiB chunks.
                      std::pair<std::size_t, std::uint32_t>{19 * kMiB + 12345, kMiB},
                      // Many small chunks per batch.
                      std::pair<std::size_t, std::uint32_t>{300000, 16}));

TEST_F(SealedFixture, RewrapThenUnseal) {
  const std::string plain = RandomBytes(5000);
  const std::string sealed = Seal(plain, 1024);
  const std::string before = ReadAll(sealed);
  ASSERT_TRUE(local_->Rotate("k"));
  auto r = RewrapFile(sealed, kms_, std::nullopt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->previous_kek_version, 1u);
  EXPECT_EQ(r->kek_version, 2u);
  const std::string after = ReadAll(sealed);
  UniqueFd fd(::open(sealed.c_str(), O_RDONLY));
  auto info = OpenSealed(fd.get());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->header.kek_version, 2u);
  // The chunks are byte-for-byte the same; only the header changed.
  UniqueFd fd0(::open(sealed.c_str(), O_RDONLY));
  const std::size_t old_header = before.size() - (after.size() - info->header.header_bytes);
  EXPECT_EQ(before.substr(old_header), after.substr(info->header.header_bytes));
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);
  EXPECT_EQ(LeftoverCount(), 0u);
}

// In place: the header written over the old one (same inode, chunks untouched);
// a header torn as by a power loss is put back from the journaled bytes, but
// never into a file that has replaced the journaled one.
TEST_F(SealedFixture, HeaderRewrittenInPlaceAndATornOneRestored) {
  const std::string plain = RandomBytes(5000);
  const std::string sealed = Seal(plain, 1024);
  const std::string before = ReadAll(sealed);
  struct stat st0 {};
  ASSERT_EQ(::stat(sealed.c_str(), &st0), 0);
  ASSERT_TRUE(local_->Rotate("k"));
  auto h = PrepareHeaderRewrite(sealed, kms_, std::nullopt);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->before.size(), h->after.size());
  EXPECT_EQ(std::string(h->before.begin(), h->before.end()), before.substr(0, h->before.size()));
  // Torn: the first half of the new header over the old one.
  {
    UniqueFd w(::open(sealed.c_str(), O_WRONLY));
    ASSERT_EQ(::pwrite(w.get(), h->after.data(), h->after.size() / 2, 0), static_cast<ssize_t>(h->after.size() / 2));
  }
  EXPECT_FALSE(Unseal(sealed));  // refused, never decrypted wrongly
  // Another file renamed over it since: left alone.
  const std::string other = Seal(RandomBytes(100, 2), 1024, "other");
  const std::string torn = ReadAll(sealed);
  ASSERT_EQ(::rename(sealed.c_str(), Path("torn").c_str()), 0);
  ASSERT_EQ(::rename(other.c_str(), sealed.c_str()), 0);
  auto r = RestoreHeader(sealed, h->dev, h->ino, h->before, h->after);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  ASSERT_EQ(::rename(sealed.c_str(), other.c_str()), 0);
  ASSERT_EQ(::rename(Path("torn").c_str(), sealed.c_str()), 0);
  r = RestoreHeader(sealed, h->dev, h->ino, h->before, h->after);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(*r);
  EXPECT_EQ(ReadAll(sealed), before);
  // Written: the same inode, the chunks untouched, the new version unseals.
  auto h2 = PrepareHeaderRewrite(sealed, kms_, std::nullopt);
  ASSERT_TRUE(h2);
  const std::vector<Status> written = WriteHeaders(std::span<const HeaderRewrite>(&*h2, 1));
  ASSERT_TRUE(written.at(0)) << written[0].error().message;
  struct stat st1 {};
  ASSERT_EQ(::stat(sealed.c_str(), &st1), 0);
  EXPECT_EQ(st1.st_ino, st0.st_ino);
  const std::string after = ReadAll(sealed);
  EXPECT_EQ(after.substr(h2->after.size()), before.substr(h2->before.size()));
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);
  UniqueFd fd(::open(sealed.c_str(), O_RDONLY));
  EXPECT_EQ(OpenSealed(fd.get())->header.kek_version, 2u);
  // Settled: new header now, nothing to restore.
  r = RestoreHeader(sealed, h2->dev, h2->ino, h2->before, h2->after);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  EXPECT_EQ(LeftoverCount(), 0u);
}

TEST_F(SealedFixture, RewrapToAnotherKeyThenDisableTheOld) {
  const std::string plain = RandomBytes(3000);
  const std::string sealed = Seal(plain, 512);
  ASSERT_TRUE(local_->Create("k2"));
  auto r = RewrapFile(sealed, kms_, KeyRef{"local", "k2"});
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(local_->Disable("k"));
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);
}

TEST_F(SealedFixture, DisableThenUnsealFails) {
  const std::string sealed = Seal(RandomBytes(100), 64);
  ASSERT_TRUE(local_->Disable("k"));
  auto back = Unseal(sealed);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::kKeyDisabled);
  EXPECT_EQ(RewrapFile(sealed, kms_, std::nullopt).error().code, Errc::kKeyDisabled);
}

TEST_F(SealedFixture, RotatedKeyStillUnsealsOldFiles) {
  const std::string plain = RandomBytes(100);
  const std::string sealed = Seal(plain, 64);
  ASSERT_TRUE(local_->Rotate("k"));
  ASSERT_TRUE(local_->Rotate("k"));
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);
}

TEST_F(SealedFixture, WrongKeyIsReported) {
  const std::string sealed = Seal(RandomBytes(100), 64);
  std::filesystem::remove(Path("keys/k.key"));
  ASSERT_TRUE(local_->Create("k"));  // same name, other key material
  auto back = Unseal(sealed);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::kWrongKey);
}

TEST_F(SealedFixture, UnknownKeyIsReported) {
  const std::string sealed = Seal(RandomBytes(100), 64);
  std::filesystem::remove(Path("keys/k.key"));
  auto back = Unseal(sealed);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::kKeyUnknown);
}

TEST_F(SealedFixture, RefusesToOverwriteOutput) {
  const std::string sealed = Seal(RandomBytes(10), 64);
  WriteAll(Path("exists"), "keep me");
  auto r = UnsealFile(sealed, Path("exists"), kms_, Replace::kRefuse);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(ReadAll(Path("exists")), "keep me");
  ASSERT_TRUE(UnsealFile(sealed, Path("exists"), kms_, Replace::kReplace));
  EXPECT_EQ(ReadAll(Path("exists")).size(), 10u);
  SealOptions o{KeyRef{"local", "k"}, "d", "", 64, {}};
  EXPECT_EQ(SealFile(Path("f.plain"), sealed, kms_, o).error().code, Errc::kAlreadyExists);
}

// Hostile: OUT is a symlink planted towards a file the attacker wants overwritten.
TEST_F(SealedFixture, NeverWritesThroughASymlinkedOutput) {
  const std::string sealed = Seal(RandomBytes(10), 64);
  WriteAll(Path("victim"), "precious");
  std::filesystem::create_symlink(Path("victim"), Path("planted"));
  auto refused = UnsealFile(sealed, Path("planted"), kms_, Replace::kRefuse);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kAlreadyExists);
  ASSERT_TRUE(UnsealFile(sealed, Path("planted"), kms_, Replace::kReplace));
  EXPECT_EQ(ReadAll(Path("victim")), "precious");
  EXPECT_FALSE(std::filesystem::is_symlink(Path("planted")));
  EXPECT_EQ(ReadAll(Path("planted")).size(), 10u);
}

TEST_F(SealedFixture, OutputIsPrivate) {
  const std::string sealed = Seal(RandomBytes(10), 64);
  ASSERT_TRUE(UnsealFile(sealed, Path("plain.out"), kms_, Replace::kRefuse));
  struct stat st {};
  ASSERT_EQ(::stat(Path("plain.out").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(SealedFixture, SealFromPipeAndUnsealWithKeyIntoSink) {
  const std::string plain = RandomBytes(3 * 4096 + 5);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < plain.size()) {  // dribble in odd sizes to exercise the lookahead
      const std::size_t n = std::min<std::size_t>(777, plain.size() - off);
      ASSERT_EQ(::write(p[1], plain.data() + off, n), static_cast<ssize_t>(n));
      off += n;
    }
    ::close(p[1]);
  });
  UniqueFd out(::open(Path("pipe.sealed").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
  SealOptions o{KeyRef{"local", "k"}, "streamed", "job-7", 4096, {}};
  auto report = SealStream(p[0], out.get(), *local_, o);
  writer.join();
  ::close(p[0]);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->plaintext_bytes, plain.size());
  EXPECT_EQ(report->chunks, 4u);

  auto info = OpenSealed(out.get());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->header.job, "job-7");
  auto dek = UnwrapDataKey(info->header, *local_);
  ASSERT_TRUE(dek) << dek.error().message;
  std::string got;
  auto r = UnsealWithKey(out.get(), info->header, *dek, [&](std::span<const std::uint8_t> chunk) -> Status {
    got.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    return {};
  });
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(got, plain);

  // A sink error stops the unseal and is returned as is.
  auto stopped = UnsealWithKey(out.get(), info->header, *dek,
                               [](auto) -> Status { return Fail(Errc::kIo, "disk full"); });
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().message, "disk full");

  // Another DEK: key commitment fails before any chunk is touched.
  auto other = SecretBytes::Random(32);
  auto wrong = UnsealWithKey(out.get(), info->header, *other, [](auto) -> Status { return {}; });
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::kTampered);
}

TEST_F(SealedFixture, ProgressReportsEveryByte) {
  const std::string plain = RandomBytes(5 * kMiB + 3);
  const std::string in = Path("p.plain");
  WriteAll(in, plain);
  std::uint64_t last_done = 0, last_total = 0;
  SealOptions o{KeyRef{"local", "k"}, "d", "", kMiB, [&](std::uint64_t d, std::uint64_t t) {
                  EXPECT_GE(d, last_done);
                  last_done = d;
                  last_total = t;
                }};
  ASSERT_TRUE(SealFile(in, Path("p.sealed"), kms_, o));
  EXPECT_EQ(last_done, plain.size());
  EXPECT_EQ(last_total, plain.size());
}

TEST_F(SealedFixture, RejectsBadOptions) {
  SealOptions o{KeyRef{"local", "k"}, "", "", 64, {}};
  EXPECT_EQ(SealFile(Path("x"), Path("y"), kms_, o).error().code, Errc::kInvalidArgument);
  o.dataset = "a/b";
  WriteAll(Path("x"), "x");
  EXPECT_EQ(SealFile(Path("x"), Path("y"), kms_, o).error().code, Errc::kInvalidArgument);
  o.dataset = "ok";
  o.chunk_bytes = 8;
  EXPECT_EQ(SealFile(Path("x"), Path("y"), kms_, o).error().code, Errc::kInvalidArgument);
  o.chunk_bytes = 64;
  o.key = KeyRef{"local", "missing"};
  EXPECT_EQ(SealFile(Path("x"), Path("y"), kms_, o).error().code, Errc::kKeyUnknown);
  EXPECT_FALSE(Exists(Path("y")));
  EXPECT_EQ(LeftoverCount(), 0u);
}

}  // namespace
}  // namespace cordon::sealed::testing
