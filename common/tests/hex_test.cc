#include "cordon/hex.h"

#include <gtest/gtest.h>

namespace cordon {
namespace {

TEST(Hex, EncodesLowerCaseAndDecodesBack) {
  const std::string bytes("\x00\x01\x7f\x80\xff", 5);
  EXPECT_EQ(HexEncode(bytes), "00017f80ff");
  EXPECT_EQ(HexDecode("00017f80ff"), bytes);
  EXPECT_EQ(HexEncode(std::string_view{}), "");
  EXPECT_EQ(HexDecode(""), std::string{});
}

TEST(Hex, DecodeRefusesOddLengthsAndOtherCharacters) {
  EXPECT_FALSE(HexDecode("abc"));
  EXPECT_FALSE(HexDecode("0g"));
  EXPECT_FALSE(HexDecode("AB"));  // lower case only: what HexEncode writes
  EXPECT_FALSE(HexDecode("0 "));
}

}  // namespace
}  // namespace cordon
