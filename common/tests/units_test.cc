#include "cordon/units.h"

#include <gtest/gtest.h>

namespace cordon {
namespace {

using std::chrono::milliseconds;

TEST(ParseSize, AcceptsPlainAndSuffixed) {
  EXPECT_EQ(ParseSize("0").value(), 0u);
  EXPECT_EQ(ParseSize("1024").value(), 1024u);
  EXPECT_EQ(ParseSize("1Ki").value(), 1024u);
  EXPECT_EQ(ParseSize("512Mi").value(), 512ull << 20);
  EXPECT_EQ(ParseSize("2Gi").value(), 2ull << 30);
  EXPECT_EQ(ParseSize("1Ti").value(), 1ull << 40);
  EXPECT_EQ(ParseSize("500M").value(), 500'000'000u);
  EXPECT_EQ(ParseSize("3k").value(), 3000u);
}

TEST(ParseSize, RejectsMalformed) {
  for (const char* bad : {"", "Gi", "-1", "+1", "1.5Gi", "1 Gi", "1GB", "1gi", "1Gi ", "0x10",
                          "18446744073709551616", "17179869184Gi"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(ParseSize("1GB").error().message.find("unknown size suffix 'GB'"), std::string::npos);
}

TEST(ParseDuration, AcceptsUnitsAndCompounds) {
  EXPECT_EQ(ParseDuration("90s").value(), milliseconds(90'000));
  EXPECT_EQ(ParseDuration("30m").value(), milliseconds(1'800'000));
  EXPECT_EQ(ParseDuration("2h").value(), milliseconds(7'200'000));
  EXPECT_EQ(ParseDuration("1d").value(), milliseconds(86'400'000));
  EXPECT_EQ(ParseDuration("1h30m").value(), milliseconds(5'400'000));
  EXPECT_EQ(ParseDuration("500ms").value(), milliseconds(500));
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* bad : {"", "30", "m", "1.5h", "-1s", "1 h", "1y", "1hh", "s30",
                          "99999999999999999999s", "9999999999999999d"}) {
    EXPECT_FALSE(ParseDuration(bad).has_value()) << bad;
  }
}

TEST(Format, RoundTrips) {
  EXPECT_EQ(FormatSize(1ull << 30), "1Gi");
  EXPECT_EQ(FormatSize(1536ull << 20), "1536Mi");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatDuration(milliseconds(5'400'000)), "1h30m");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(FormatDuration(milliseconds(86'400'000 + 1000)), "1d1s");
  for (const char* text : {"1h30m", "45s", "7d", "250ms"}) {
    EXPECT_EQ(FormatDuration(ParseDuration(text).value()), text);
  }
}

}  // namespace
}  // namespace cordon
