// Sealed files whose data keys are wrapped inside a real SoftHSM2 token.
#include "sealed_test_util.h"
#include "softhsm_token.h"

namespace cordon::sealed::testing {
namespace {

class SealedPkcs11 : public SealedFixture {
 protected:
  void SetUp() override {
    if (const std::string why = token_.Init(); !why.empty()) GTEST_SKIP() << why;
    SealedFixture::SetUp();
    kms_ = CachedKeyManagers(kms::Options{dir_ + "/keys", token_.options()});
    auto hsm = kms_.get("pkcs11");
    ASSERT_TRUE(hsm) << hsm.error().message;
    hsm_ = *hsm;
    auto local = kms_.get("local");
    ASSERT_TRUE(local);
    local_ = *local;
    ASSERT_TRUE(hsm_->Create("hsm"));
  }

  kms::testing::SoftHsmToken token_;
  kms::KeyManager* hsm_ = nullptr;
};

TEST_F(SealedPkcs11, SealUnsealRotateRewrapDisable) {
  const std::string plain = RandomBytes(3 * 1000 + 1);
  const std::string in = Path("p.plain");
  const std::string sealed = Path("p.sealed");
  WriteAll(in, plain);
  auto r = SealFile(in, sealed, kms_, SealOptions{KeyRef{"pkcs11", "hsm"}, "hsm-data", "", 1000, {}});
  ASSERT_TRUE(r) << r.error().message;
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);

  ASSERT_TRUE(hsm_->Rotate("hsm"));
  auto rewrapped = RewrapFile(sealed, kms_, std::nullopt);
  ASSERT_TRUE(rewrapped) << rewrapped.error().message;
  EXPECT_EQ(rewrapped->kek_version, 2u);
  back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);

  ASSERT_TRUE(hsm_->Disable("hsm"));
  back = Unseal(sealed);
  ASSERT_FALSE(back);
  EXPECT_EQ(back.error().code, Errc::kKeyDisabled);
}

TEST_F(SealedPkcs11, RewrapFromLocalKeyringIntoTheHsm) {
  const std::string plain = RandomBytes(500);
  const std::string sealed = Seal(plain, 64);  // under kms://local/k
  auto r = RewrapFile(sealed, kms_, KeyRef{"pkcs11", "hsm"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->previous_key->ToString(), "kms://local/k");
  ASSERT_TRUE(local_->Disable("k"));  // the local key is no longer needed
  auto back = Unseal(sealed);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, plain);
}

}  // namespace
}  // namespace cordon::sealed::testing
