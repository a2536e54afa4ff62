// The pkcs11 adapter against a real SoftHSM2 token created for each test.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include "softhsm_token.h"

namespace cordon::kms {
namespace {

class Pkcs11Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = token_.Init(); !why.empty()) GTEST_SKIP() << why;
  }
  std::unique_ptr<KeyManager> Open() {
    auto km = OpenKeyManager("pkcs11", Options{"", token_.options()});
    EXPECT_TRUE(km) << km.error().message;
    return km ? std::move(*km) : nullptr;
  }
  static SecretBytes Dek() { return std::move(*SecretBytes::Random(kDekBytes)); }

  testing::SoftHsmToken token_;
};

TEST_F(Pkcs11Test, CreateWrapUnwrapRotateDisable) {
  auto km = Open();
  ASSERT_TRUE(km);
  auto info = km->Create("hsm-key");
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->versions, std::vector<std::uint32_t>{1});
  EXPECT_EQ(km->Create("hsm-key").error().code, Errc::kAlreadyExists);

  SecretBytes dek = Dek();
  const WrapContext ctx{"customers", ""};
  auto w1 = km->Wrap("hsm-key", dek, ctx);
  ASSERT_TRUE(w1) << w1.error().message;
  EXPECT_EQ(w1->version, 1u);
  auto back = km->Unwrap("hsm-key", 1, w1->blob, ctx);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->Equals(dek.span()));
  EXPECT_EQ(km->Unwrap("hsm-key", 1, w1->blob, {"other", ""}).error().code, Errc::kTampered);
  auto blob = w1->blob;
  blob.back() ^= 1;
  EXPECT_EQ(km->Unwrap("hsm-key", 1, blob, ctx).error().code, Errc::kTampered);

  auto rotated = km->Rotate("hsm-key");
  ASSERT_TRUE(rotated) << rotated.error().message;
  EXPECT_EQ(rotated->versions, (std::vector<std::uint32_t>{1, 2}));
  auto w2 = km->Wrap("hsm-key", dek, ctx);
  ASSERT_TRUE(w2);
  EXPECT_EQ(w2->version, 2u);
  EXPECT_TRUE(km->Unwrap("hsm-key", 1, w1->blob, ctx));
  EXPECT_EQ(km->Unwrap("hsm-key", 2, w1->blob, ctx).error().code, Errc::kWrongKey);
  EXPECT_EQ(km->Unwrap("hsm-key", 3, w1->blob, ctx).error().code, Errc::kKeyUnknown);

  // A fresh session (another process would see the same): keys persist in the token.
  km.reset();
  km = Open();
  ASSERT_TRUE(km);
  auto list = km->List();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().current(), 2u);

  ASSERT_TRUE(km->Disable("hsm-key"));
  EXPECT_EQ(km->Unwrap("hsm-key", 2, w2->blob, ctx).error().code, Errc::kKeyDisabled);
  EXPECT_EQ(km->Wrap("hsm-key", dek, ctx).error().code, Errc::kKeyDisabled);
  auto after = km->Describe("hsm-key");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->disabled);
}

TEST_F(Pkcs11Test, TwoAdaptersShareOneModuleInitialisation) {
  auto first = Open();
  auto second = Open();
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->Create("shared"));
  first.reset();  // must not C_Finalize under the second
  SecretBytes dek = Dek();
  auto w = second->Wrap("shared", dek, {"d", ""});
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_TRUE(second->Unwrap("shared", 1, w->blob, {"d", ""}));
}

TEST_F(Pkcs11Test, MissingKey) {
  auto km = Open();
  ASSERT_TRUE(km);
  SecretBytes dek = Dek();
  auto r = km->Wrap("nope", dek, {"d", ""});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kKeyUnknown);
  EXPECT_NE(r.error().message.find("cordon-test"), std::string::npos) << r.error().message;
}

TEST_F(Pkcs11Test, WrongPin) {
  token_.WritePin("9999");
  auto km = OpenKeyManager("pkcs11", Options{"", token_.options()});
  ASSERT_FALSE(km);
  EXPECT_EQ(km.error().code, Errc::kKmsUnavailable);
  EXPECT_NE(km.error().message.find("wrong PIN"), std::string::npos) << km.error().message;
}

TEST_F(Pkcs11Test, MissingModuleAndToken) {
  Pkcs11Options o = token_.options();
  o.module = "/nonexistent/libpkcs11.so";
  auto km = OpenKeyManager("pkcs11", Options{"", o});
  ASSERT_FALSE(km);
  EXPECT_EQ(km.error().code, Errc::kKmsUnavailable);
  EXPECT_NE(km.error().message.find("/nonexistent/libpkcs11.so"), std::string::npos) << km.error().message;

  o = token_.options();
  o.token_label = "no-such-token";
  km = OpenKeyManager("pkcs11", Options{"", o});
  ASSERT_FALSE(km);
  EXPECT_EQ(km.error().code, Errc::kKmsUnavailable);
  EXPECT_NE(km.error().message.find("no-such-token"), std::string::npos) << km.error().message;
}

TEST_F(Pkcs11Test, PinFileReadableByOthersIsRefused) {
  ::chmod(token_.options().pin_file.c_str(), 0644);
  auto km = OpenKeyManager("pkcs11", Options{"", token_.options()});
  ASSERT_FALSE(km);
  EXPECT_EQ(km.error().code, Errc::kPermissionDenied);
}

// Hostile: with the PIN and raw PKCS#11 calls, the KEK value still cannot be read.
TEST_F(Pkcs11Test, KekIsNotExtractable) {
  {
    auto km = Open();
    ASSERT_TRUE(km);
    ASSERT_TRUE(km->Create("sealed-kek"));
  }
  void* dl = ::dlopen(testing::kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(dl, nullptr);
  CK_FUNCTION_LIST_PTR f = nullptr;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(dl, "C_GetFunctionList"));
  ASSERT_EQ(get(&f), CKR_OK);
  ASSERT_EQ(f->C_Initialize(nullptr), CKR_OK);
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  ASSERT_EQ(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
  ASSERT_GE(n, 1u);
  CK_SESSION_HANDLE s = 0;
  ASSERT_EQ(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
  CK_UTF8CHAR pin[] = "1234";
  ASSERT_EQ(f->C_Login(s, CKU_USER, pin, 4), CKR_OK);
  char label[] = "sealed-kek/v1";
  CK_ATTRIBUTE find[] = {{CKA_LABEL, label, sizeof label - 1}};
  ASSERT_EQ(f->C_FindObjectsInit(s, find, 1), CKR_OK);
  CK_OBJECT_HANDLE key = 0;
  CK_ULONG found = 0;
  ASSERT_EQ(f->C_FindObjects(s, &key, 1, &found), CKR_OK);
  f->C_FindObjectsFinal(s);
  ASSERT_EQ(found, 1u);
  std::uint8_t value[64];
  CK_ATTRIBUTE read_value[] = {{CKA_VALUE, value, sizeof value}};
  EXPECT_EQ(f->C_GetAttributeValue(s, key, read_value, 1), CKR_ATTRIBUTE_SENSITIVE);
  CK_BBOOL extractable = CK_TRUE, sensitive = CK_FALSE, token = CK_FALSE;
  CK_ATTRIBUTE flags[] = {{CKA_EXTRACTABLE, &extractable, sizeof extractable},
                          {CKA_SENSITIVE, &sensitive, sizeof sensitive},
                          {CKA_TOKEN, &token, sizeof token}};
  ASSERT_EQ(f->C_GetAttributeValue(s, key, flags, 3), CKR_OK);
  EXPECT_EQ(extractable, CK_FALSE);
  EXPECT_EQ(sensitive, CK_TRUE);
  EXPECT_EQ(token, CK_TRUE);
  f->C_Logout(s);
  f->C_CloseSession(s);
  f->C_Finalize(nullptr);
  ::dlclose(dl);
}

}  // namespace
}  // namespace cordon::kms
