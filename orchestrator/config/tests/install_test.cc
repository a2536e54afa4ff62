#include "cordon/config/install.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "cordon/file_io.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::orchestrator {
namespace {

class InstallTest : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"init"};  // removed with the fixture
  void SetUp() override {
    tmp_ = tmp_dir_.path();
    root_ = tmp_ + "/inst";
  }
  std::string tmp_;
  std::string root_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(InstallTest, CreatesTreeWithTightModesAndLoadableConfig) {
  const mode_t old = ::umask(0);  // modes must not depend on the caller's umask
  auto report = InitInstallation(root_);
  ::umask(old);
  ASSERT_TRUE(report.has_value()) << report.error().message;
  for (const auto& item : report->items) EXPECT_TRUE(item.created) << item.path;
  EXPECT_EQ(ModeOf(root_ + "/keys"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/state"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/audit"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/spool/incoming"), 01733u);
  EXPECT_EQ(ModeOf(root_ + "/spool/rejected"), 0700u);
  EXPECT_EQ(ModeOf(root_ + "/cordon.yaml"), 0640u);

  auto config = LoadConfig(root_ + "/cordon.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->path, root_ + "/cordon.yaml");
  for (const std::string& path : {config->state_dir, config->spool_dir, config->audit_dir,
                                  config->kms.local_keyring, config->daemon.socket}) {
    EXPECT_TRUE(path.starts_with(root_ + "/")) << path;
  }
}

TEST_F(InstallTest, SecondRunOverwritesNothing) {
  ASSERT_TRUE(InitInstallation(root_).has_value());
  ASSERT_TRUE(WriteFileAtomic(root_ + "/cordon.yaml", "state_dir: /custom\n", 0600).has_value());
  ASSERT_EQ(::chmod((root_ + "/keys").c_str(), 0750), 0);
  auto again = InitInstallation(root_);
  ASSERT_TRUE(again.has_value());
  for (const auto& item : again->items) EXPECT_FALSE(item.created) << item.path;
  EXPECT_EQ(ReadFileLimited(root_ + "/cordon.yaml", 1000).value(), "state_dir: /custom\n");
  EXPECT_EQ(ModeOf(root_ + "/keys"), 0750u);
}

TEST_F(InstallTest, RelativeRootIsMadeAbsolute) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(tmp_);
  auto report = InitInstallation("rel/./inst/");
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(report.has_value()) << report.error().message;
  EXPECT_EQ(report->config.path, tmp_ + "/rel/inst/cordon.yaml");
}

TEST_F(InstallTest, RefusesPseudoFsAndFileInTheWay) {
  EXPECT_FALSE(InitInstallation("/proc/cordon").has_value());
  ASSERT_TRUE(WriteFileAtomic(tmp_ + "/file", "x", 0600).has_value());
  auto r = InitInstallation(tmp_ + "/file");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace cordon::orchestrator
