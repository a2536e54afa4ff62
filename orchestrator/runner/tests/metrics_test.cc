// The metrics channel's filter: only names the spec declared, with finite
// numbers or booleans, pass; everything else is dropped and counted.
#include "metrics.h"

#include <gtest/gtest.h>

namespace cordon::runner::internal {
namespace {

const std::set<std::string> kDeclared = {"loss", "auc", "epoch", "ok"};

TEST(SanitiseMetricsTest, DeclaredNumbersAndBooleansPass) {
  auto m = SanitiseMetrics(R"({"loss": 0.5, "auc": 1, "epoch": 3, "ok": true})", kDeclared);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->values, nlohmann::json::parse(R"({"loss": 0.5, "auc": 1, "epoch": 3, "ok": true})"));
  EXPECT_EQ(m->dropped, 0u);
}

TEST(SanitiseMetricsTest, UndeclaredNamesAreDroppedAndCounted) {
  // A trainer naming a key after a row: the name never passes.
  auto m = SanitiseMetrics(R"({"loss": 0.25, "Jane_Doe_123_45_6789": 1, "val_loss": 2})", kDeclared);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->values, nlohmann::json::parse(R"({"loss": 0.25})"));
  EXPECT_EQ(m->dropped, 2u);
}

TEST(SanitiseMetricsTest, DeclaredNamesWithNonNumbersAreDropped) {
  auto m = SanitiseMetrics(R"({"loss": "Doe, Jane", "auc": [1], "epoch": {"a": 1}, "ok": null})", kDeclared);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->values.empty());
  EXPECT_EQ(m->dropped, 4u);
}

TEST(SanitiseMetricsTest, NothingDeclaredNothingPasses) {
  auto m = SanitiseMetrics(R"({"loss": 0.5, "epoch": 1})", {});
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->values.empty());
  EXPECT_EQ(m->dropped, 2u);
}

TEST(SanitiseMetricsTest, OutOfRangeNumbersAreNotALine) {
  // JSON has no infinity or NaN; a number past double's range fails the parse.
  EXPECT_FALSE(SanitiseMetrics(R"({"loss": 1e999, "auc": 0.9})", kDeclared));
  EXPECT_FALSE(SanitiseMetrics(R"({"loss": NaN})", kDeclared));
}

TEST(SanitiseMetricsTest, NotAnObjectOrTooLongIsNotALine) {
  EXPECT_FALSE(SanitiseMetrics("[1, 2]", kDeclared));
  EXPECT_FALSE(SanitiseMetrics("loss=0.5", kDeclared));
  EXPECT_FALSE(SanitiseMetrics("", kDeclared));
  std::string big = R"({"loss": 1, "pad": ")" + std::string(kMaxMetricLine, 'x') + R"("})";
  EXPECT_FALSE(SanitiseMetrics(big, kDeclared));
}

TEST(SanitiseMetricsTest, NamesMatchExactly) {
  auto m = SanitiseMetrics(R"({"Loss": 1, "loss ": 2, "loss\u0000": 3})", kDeclared);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->values.empty());
  EXPECT_EQ(m->dropped, 3u);
}

}  // namespace
}  // namespace cordon::runner::internal
