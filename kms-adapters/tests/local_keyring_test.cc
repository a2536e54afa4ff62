// The local adapter against a real keyring directory.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cordon/kms/kms.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::kms {
namespace {

class LocalKeyringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_.path() + "/keys";
    auto km = OpenKeyManager("local", Options{dir_, std::nullopt});
    ASSERT_TRUE(km) << km.error().message;
    km_ = std::move(*km);
  }

  SecretBytes Dek() {
    auto dek = SecretBytes::Random(kDekBytes);
    EXPECT_TRUE(dek);
    return std::move(*dek);
  }

  cordon::testing::TempDir temp_{"kms"};
  std::string dir_;
  std::unique_ptr<KeyManager> km_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(LocalKeyringTest, CreateMakesPrivateFiles) {
  auto info = km_->Create("training");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->versions, std::vector<std::uint32_t>{1});
  EXPECT_EQ(ModeOf(dir_), 0700u);
  EXPECT_EQ(ModeOf(dir_ + "/training.key"), 0600u);
  auto again = km_->Create("training");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kAlreadyExists);
}

TEST_F(LocalKeyringTest, RefusesBadNamesAndOpenKeyring) {
  EXPECT_EQ(km_->Create("../evil").error().code, Errc::kInvalidArgument);
  EXPECT_EQ(km_->Create("").error().code, Errc::kInvalidArgument);
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  auto km = OpenKeyManager("local", Options{dir_, std::nullopt});
  ASSERT_FALSE(km);
  EXPECT_EQ(km.error().code, Errc::kPermissionDenied);
  EXPECT_NE(km.error().message.find("0755"), std::string::npos) << km.error().message;
}

TEST_F(LocalKeyringTest, RefusesKeyFileReadableByOthers) {
  ASSERT_TRUE(km_->Create("k"));
  ASSERT_EQ(::chmod((dir_ + "/k.key").c_str(), 0644), 0);
  auto info = km_->Describe("k");
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, Errc::kPermissionDenied);
}

TEST_F(LocalKeyringTest, WrapUnwrapBindsContext) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  const WrapContext ctx{"customers", ""};
  auto wrapped = km_->Wrap("k", dek, ctx);
  ASSERT_TRUE(wrapped) << wrapped.error().message;
  EXPECT_EQ(wrapped->version, 1u);
  auto back = km_->Unwrap("k", 1, wrapped->blob, ctx);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->Equals(dek.span()));

  auto other_dataset = km_->Unwrap("k", 1, wrapped->blob, WrapContext{"customerz", ""});
  ASSERT_FALSE(other_dataset);
  EXPECT_EQ(other_dataset.error().code, Errc::kTampered);
  auto other_job = km_->Unwrap("k", 1, wrapped->blob, WrapContext{"customers", "job-1"});
  ASSERT_FALSE(other_job);
  EXPECT_EQ(other_job.error().code, Errc::kTampered);

  for (std::size_t i = 8; i < wrapped->blob.size(); ++i) {
    auto blob = wrapped->blob;
    blob[i] ^= 0x01;
    auto r = km_->Unwrap("k", 1, blob, ctx);
    ASSERT_FALSE(r) << "byte " << i;
    EXPECT_EQ(r.error().code, Errc::kTampered) << "byte " << i;
  }
}

// The AAD refuses a field over 255 bytes instead of cutting it: two datasets
// whose names differ only past byte 255 would otherwise share an AAD.
TEST_F(LocalKeyringTest, WrapRefusesContextFieldsOver255Bytes) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  const std::string at_limit(255, 'd');
  auto ok = km_->Wrap("k", dek, {at_limit, ""});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(km_->Unwrap("k", 1, ok->blob, {at_limit, ""}));
  for (const WrapContext& ctx : {WrapContext{at_limit + "x", ""}, WrapContext{"d", std::string(256, 'j')}}) {
    auto refused = km_->Wrap("k", dek, ctx);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::kInvalidArgument);
    EXPECT_NE(refused.error().message.find("at most 255"), std::string::npos) << refused.error().message;
    auto unwrap = km_->Unwrap("k", 1, ok->blob, ctx);
    ASSERT_FALSE(unwrap);
    EXPECT_EQ(unwrap.error().code, Errc::kInvalidArgument);
  }
  auto aad = WrapAad("local", "k", 2, {"d", ""});
  ASSERT_TRUE(aad);
  // ... "k" | u32 version, big-endian | ...
  const std::vector<std::uint8_t> version_bytes{0, 0, 0, 2};
  EXPECT_NE(std::search(aad->begin(), aad->end(), version_bytes.begin(), version_bytes.end()), aad->end());
  EXPECT_FALSE(WrapAad(std::string(256, 'a'), "k", 1, {"d", ""}));
}

TEST_F(LocalKeyringTest, RotateKeepsOldVersionsAndWrapsWithNewest) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  auto v1 = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(v1);
  auto rotated = km_->Rotate("k");
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_EQ(rotated->versions, (std::vector<std::uint32_t>{1, 2}));
  auto v2 = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->version, 2u);
  EXPECT_TRUE(km_->Unwrap("k", 1, v1->blob, {"d", ""}));
  EXPECT_TRUE(km_->Unwrap("k", 2, v2->blob, {"d", ""}));
  // A blob of v1 presented as v2: the key id differs.
  auto swapped = km_->Unwrap("k", 2, v1->blob, {"d", ""});
  ASSERT_FALSE(swapped);
  EXPECT_EQ(swapped.error().code, Errc::kWrongKey);
  auto missing = km_->Unwrap("k", 3, v1->blob, {"d", ""});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kKeyUnknown);
}

TEST_F(LocalKeyringTest, DisableRefusesWrapAndUnwrap) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  auto wrapped = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(wrapped);
  ASSERT_TRUE(km_->Disable("k"));
  EXPECT_EQ(km_->Unwrap("k", 1, wrapped->blob, {"d", ""}).error().code, Errc::kKeyDisabled);
  EXPECT_EQ(km_->Wrap("k", dek, {"d", ""}).error().code, Errc::kKeyDisabled);
  EXPECT_EQ(km_->Rotate("k").error().code, Errc::kKeyDisabled);
  auto list = km_->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE(list->front().disabled);
}

TEST_F(LocalKeyringTest, DisableVersionRetiresOnlyThatOldVersion) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  auto v1 = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(v1);
  EXPECT_EQ(km_->DisableVersion("k", 1).error().code, Errc::kInvalidArgument);  // the current one
  ASSERT_TRUE(km_->Rotate("k"));
  auto v2 = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(v2);
  EXPECT_EQ(km_->DisableVersion("k", 7).error().code, Errc::kKeyUnknown);
  ASSERT_TRUE(km_->DisableVersion("k", 1));
  ASSERT_TRUE(km_->DisableVersion("k", 1));  // idempotent
  EXPECT_EQ(km_->Unwrap("k", 1, v1->blob, {"d", ""}).error().code, Errc::kKeyDisabled);
  EXPECT_TRUE(km_->Unwrap("k", 2, v2->blob, {"d", ""}));
  EXPECT_TRUE(km_->Wrap("k", dek, {"d", ""}));
  // It survives a reload of the key file.
  auto again = kms::OpenKeyManager("local", {dir_, std::nullopt});
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->Unwrap("k", 1, v1->blob, {"d", ""}).error().code, Errc::kKeyDisabled);
}

TEST_F(LocalKeyringTest, RecreatedKeyIsWrongKey) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  auto wrapped = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(wrapped);
  std::filesystem::remove(dir_ + "/k.key");
  ASSERT_TRUE(km_->Create("k"));
  auto r = km_->Unwrap("k", 1, wrapped->blob, {"d", ""});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kWrongKey);
}

TEST_F(LocalKeyringTest, UnknownKeyAndAdapter) {
  SecretBytes dek = Dek();
  EXPECT_EQ(km_->Wrap("nope", dek, {"d", ""}).error().code, Errc::kKeyUnknown);
  EXPECT_EQ(OpenKeyManager("vault", Options{dir_, std::nullopt}).error().code, Errc::kKeyUnknown);
  EXPECT_EQ(OpenKeyManager("pkcs11", Options{dir_, std::nullopt}).error().code, Errc::kKmsUnavailable);
}

TEST_F(LocalKeyringTest, ConcurrentRotationsLoseNoVersion) {
  ASSERT_TRUE(km_->Create("busy"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      auto km = OpenKeyManager("local", Options{dir_, std::nullopt});  // its own lock fd
      ASSERT_TRUE(km);
      for (int i = 0; i < 10; ++i) ASSERT_TRUE((*km)->Rotate("busy"));
    });
  }
  for (auto& t : threads) t.join();
  auto info = km_->Describe("busy");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->current(), 41u);
  EXPECT_EQ(info->versions.size(), 41u);
}

TEST_F(LocalKeyringTest, CorruptKeyFileIsAnError) {
  ASSERT_TRUE(km_->Create("k"));
  {
    std::ofstream f(dir_ + "/k.key", std::ios::app);
    f << "version 1 0 0000000000000000 zz\n";
  }
  auto r = km_->Describe("k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidData);
}

// The adapter keeps the parsed keyring between calls; another KeyManager (as
// another `cordon` process would) that rotates or disables the key must be seen
// at the first call after. The pause lets the cached file settle (its times lie
// clearly before the read), so these calls really go through the cache.
void LetKeyFileSettle() { std::this_thread::sleep_for(std::chrono::milliseconds(150)); }

TEST_F(LocalKeyringTest, RotateByAnotherInstanceIsSeenAtTheNextCall) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  LetKeyFileSettle();
  auto v1 = km_->Wrap("k", dek, {"d", ""});  // reads, parses, caches
  ASSERT_TRUE(v1);
  ASSERT_EQ(v1->version, 1u);
  ASSERT_EQ(km_->Wrap("k", dek, {"d", ""})->version, 1u);  // from the cache
  auto other = OpenKeyManager("local", Options{dir_, std::nullopt});
  ASSERT_TRUE(other);
  ASSERT_TRUE((*other)->Rotate("k"));
  auto v2 = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(v2) << v2.error().message;
  EXPECT_EQ(v2->version, 2u);
  EXPECT_EQ(km_->Describe("k")->current(), 2u);
  auto back = (*other)->Unwrap("k", 2, v2->blob, {"d", ""});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->Equals(dek.span()));
  // The first instance retires v1 itself after the other rotated: it read afresh.
  ASSERT_TRUE(km_->DisableVersion("k", 1));
  EXPECT_EQ((*other)->Unwrap("k", 1, v1->blob, {"d", ""}).error().code, Errc::kKeyDisabled);
}

TEST_F(LocalKeyringTest, DisableByAnotherInstanceIsRefusedAtOnce) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  auto wrapped = km_->Wrap("k", dek, {"d", ""});
  ASSERT_TRUE(wrapped);
  ASSERT_TRUE((*OpenKeyManager("local", Options{dir_, std::nullopt}))->Rotate("k"));
  LetKeyFileSettle();
  ASSERT_TRUE(km_->Unwrap("k", 1, wrapped->blob, {"d", ""}));  // cached now
  ASSERT_TRUE(km_->Unwrap("k", 1, wrapped->blob, {"d", ""}));
  auto other = OpenKeyManager("local", Options{dir_, std::nullopt});
  ASSERT_TRUE(other);
  ASSERT_TRUE((*other)->DisableVersion("k", 1));
  auto retired = km_->Unwrap("k", 1, wrapped->blob, {"d", ""});
  ASSERT_FALSE(retired);
  EXPECT_EQ(retired.error().code, Errc::kKeyDisabled) << retired.error().message;
  ASSERT_TRUE((*other)->Disable("k"));
  auto disabled = km_->Wrap("k", dek, {"d", ""});
  ASSERT_FALSE(disabled);
  EXPECT_EQ(disabled.error().code, Errc::kKeyDisabled) << disabled.error().message;
}

// An edit in place (same inode, same size: `disabled 0` -> `disabled 1`, as root
// with an editor that writes in place) changes mtime/ctime and is seen too.
TEST_F(LocalKeyringTest, InPlaceEditIsSeenAtTheNextCall) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  LetKeyFileSettle();
  ASSERT_TRUE(km_->Wrap("k", dek, {"d", ""}));
  ASSERT_TRUE(km_->Wrap("k", dek, {"d", ""}));
  const std::string path = dir_ + "/k.key";
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  {
    std::fstream f(path, std::ios::in | std::ios::out);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::size_t at = text.find("disabled 0");
    ASSERT_NE(at, std::string::npos);
    f.seekp(static_cast<std::streamoff>(at + 9));
    f.put('1');
  }
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  ASSERT_EQ(before.st_ino, after.st_ino);
  ASSERT_EQ(before.st_size, after.st_size);
  auto refused = km_->Wrap("k", dek, {"d", ""});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kKeyDisabled);
}

// A key file removed or made readable by others after it was cached is refused
// at the next call, as before the cache.
TEST_F(LocalKeyringTest, CachedKeyStillChecksTheFile) {
  ASSERT_TRUE(km_->Create("k"));
  SecretBytes dek = Dek();
  LetKeyFileSettle();
  ASSERT_TRUE(km_->Wrap("k", dek, {"d", ""}));
  const std::string path = dir_ + "/k.key";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(km_->Wrap("k", dek, {"d", ""}).error().code, Errc::kPermissionDenied);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_TRUE(km_->Wrap("k", dek, {"d", ""}));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_EQ(km_->Wrap("k", dek, {"d", ""}).error().code, Errc::kKeyUnknown);
}

}  // namespace
}  // namespace cordon::kms
