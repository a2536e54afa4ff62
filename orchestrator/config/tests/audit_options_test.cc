// The `audit:` section of cordon.yaml and AuditOptionsFor.
#include <gtest/gtest.h>

#include "cordon/config/audit_options.h"
#include "cordon/config/config.h"

namespace cordon::orchestrator {
namespace {

TEST(AuditConfig, DefaultsAndRoundTrip) {
  const Config defaults;
  EXPECT_EQ(defaults.audit.checkpoint_every, 1000u);
  EXPECT_EQ(defaults.audit.checkpoint_interval_s, 300u);
  Config c = ConfigUnder("/srv/cordon");
  c.audit.checkpoint_every = 7;
  c.audit.checkpoint_interval_s = 90;
  auto parsed = ParseConfig(RenderConfig(c));
  ASSERT_TRUE(parsed.config.has_value()) << (parsed.diagnostics.empty() ? "" : parsed.diagnostics[0].message);
  EXPECT_EQ(parsed.config->audit.checkpoint_every, 7u);
  EXPECT_EQ(parsed.config->audit.checkpoint_interval_s, 90u);
  const audit::Options o = AuditOptionsFor(*parsed.config);
  EXPECT_EQ(o.dir, "/srv/cordon/audit");
  EXPECT_EQ(o.checkpoint_every, 7u);
  EXPECT_EQ(o.checkpoint_interval.count(), 90);
}

TEST(AuditConfig, RejectsBadValues) {
  for (const char* text : {"audit:\n  checkpoint_every: 0\n", "audit:\n  checkpoint_every: -3\n",
                           "audit:\n  checkpoint_interval: \"0s\"\n", "audit:\n  checkpoint_interval: \"2d\"\n",
                           "audit:\n  checkpoint_interval: 5\n", "audit:\n  checkpoint_every: 10\n  typo: 1\n"}) {
    auto parsed = ParseConfig(text);
    EXPECT_FALSE(parsed.config.has_value()) << text;
    EXPECT_FALSE(parsed.diagnostics.empty()) << text;
  }
  auto ok = ParseConfig("audit:\n  checkpoint_interval: \"5m\"\n");
  ASSERT_TRUE(ok.config.has_value());
  EXPECT_EQ(ok.config->audit.checkpoint_interval_s, 300u);
}

}  // namespace
}  // namespace cordon::orchestrator
