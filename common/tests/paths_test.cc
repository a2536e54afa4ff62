#include "cordon/paths.h"

#include <gtest/gtest.h>

#include "cordon/key_ref.h"

namespace cordon {
namespace {

TEST(CheckHostPath, AcceptsNormalisedAbsolute) {
  for (const char* good : {"/srv", "/srv/models/churn", "/a/b.c/d-e_f", "/procfs", "/device",
                           "/srv/..hidden", "/srv/.x"}) {
    EXPECT_TRUE(CheckHostPath(good).has_value()) << good;
  }
}

TEST(CheckHostPath, RejectsWithReason) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty"},
      {"srv/x", "relative"},
      {"/", "host root"},
      {"/srv/", "trailing '/'"},
      {"/srv//x", "'//'"},
      {"/srv/./x", "'.' component"},
      {"/srv/x/.", "'.' component"},
      {"/srv/../etc", "'..' component"},
      {"/srv/x/..", "'..' component"},
      {"/proc", "inside /proc"},
      {"/proc/self/root", "inside /proc"},
      {"/sys/kernel", "inside /sys"},
      {"/dev/sda", "inside /dev"},
      {"/srv/a\nb", "control character"},
  };
  for (const auto& [path, reason] : cases) {
    auto r = CheckHostPath(path);
    ASSERT_FALSE(r.has_value()) << path;
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << path << ": " << r.error().message;
  }
  EXPECT_FALSE(CheckHostPath("/" + std::string(256, 'a')).has_value());
  EXPECT_FALSE(CheckHostPath(std::string(2100, '/') + "x").has_value());
}

TEST(PathIsWithin, ComponentBoundaries) {
  EXPECT_TRUE(PathIsWithin("/proc", "/proc"));
  EXPECT_TRUE(PathIsWithin("/proc/1", "/proc"));
  EXPECT_FALSE(PathIsWithin("/procfs", "/proc"));
  EXPECT_FALSE(PathIsWithin("/pro", "/proc"));
}

TEST(KeyRef, ParsesAndRejects) {
  auto ref = ParseKeyRef("kms://local/models");
  ASSERT_TRUE(ref.has_value());
  EXPECT_EQ(ref->adapter, "local");
  EXPECT_EQ(ref->name, "models");
  EXPECT_EQ(ref->ToString(), "kms://local/models");
  for (const char* bad : {"local/models", "kms://local", "kms://local/", "kms:///models",
                          "kms://Local/models", "kms://local/../x", "kms://local/a/b",
                          "kms://local/-x", "https://local/models"}) {
    EXPECT_FALSE(ParseKeyRef(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace cordon
