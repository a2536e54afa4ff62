#include "cordon/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace cordon {
namespace {

// FIPS 180-2 test vectors; streaming in uneven pieces gives the one-call digest.
TEST(Sha256, KnownVectorsOneCallAndStreamed) {
  EXPECT_EQ(*Sha256Digest("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(*Sha256Digest(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string million(1'000'000, 'a');
  Sha256 h;
  for (std::size_t at = 0; at < million.size(); at += 77'777) {
    ASSERT_TRUE(h.Update(std::string_view(million).substr(at, 77'777)));
  }
  EXPECT_EQ(*h.Finish(), "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ASpentHasherRefusesMore) {
  Sha256 h;
  ASSERT_TRUE(h.Update(std::string_view("x")));
  ASSERT_TRUE(h.Finish());
  EXPECT_FALSE(h.Update(std::string_view("y")));
  EXPECT_FALSE(h.Finish());
}

}  // namespace
}  // namespace cordon
