// The image check on real trees: sockets, FIFOs, world-writable directories and
// (without fs.protected_hardlinks) the daemon socket's filesystem are refused.
#include "cordon/runner/image_scan.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "cordon/unique_fd.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::runner::internal {
namespace {

namespace fs = std::filesystem;

class ImageScanTest : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"image-scan"};  // removed with the fixture
  void SetUp() override {
    root_ = tmp_dir_.path();
    fs::create_directories(root_ + "/img/lib/deep");
    ASSERT_EQ(::chmod((root_ + "/img").c_str(), 0755), 0);
  }

  Status Check(bool links_protected = true) {
    UniqueFd fd(::open((root_ + "/img").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return CheckImage(fd.get(), socket_, links_protected);
  }

  void BindSocket(const std::string& path) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof addr.sun_path);
    path.copy(addr.sun_path, path.size());
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << path;
  }

  std::string root_, socket_;
};

TEST_F(ImageScanTest, PlainTreePasses) {
  ASSERT_TRUE(fs::exists(root_ + "/img/lib/deep"));
  ASSERT_EQ(::symlink("/run/cordon/cordon.sock", (root_ + "/img/lib/link").c_str()), 0);  // resolved in the sandbox
  EXPECT_TRUE(Check());
}

TEST_F(ImageScanTest, SocketRefusedWithItsPath) {
  BindSocket(root_ + "/img/lib/deep/s.sock");
  auto st = Check();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("a unix socket at 'lib/deep/s.sock'"), std::string::npos) << st.error().message;
}

TEST_F(ImageScanTest, FifoAndWorldWritableRefused) {
  ASSERT_EQ(::mkfifo((root_ + "/img/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(Check());
  fs::remove(root_ + "/img/fifo");
  ASSERT_EQ(::chmod((root_ + "/img/lib").c_str(), 0777), 0);
  auto st = Check();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("writable by every user at 'lib'"), std::string::npos) << st.error().message;
}

TEST_F(ImageScanTest, DaemonSocketFilesystemOnlyWithoutProtectedHardlinks) {
  socket_ = root_ + "/cordon.sock";
  BindSocket(socket_);
  EXPECT_TRUE(Check(true));
  auto st = Check(false);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("same filesystem as cordond's socket"), std::string::npos);
  socket_ = root_ + "/absent.sock";  // no socket, nothing to link
  EXPECT_TRUE(Check(false));
}

// For cordond: a directory the submitter owns, or may write through a group,
// could receive a socket after the walk; root's own run is not held back.
TEST_F(ImageScanTest, ADirectoryTheSubmitterCanChangeIsRefused) {
  UniqueFd fd(::open((root_ + "/img").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  const ImageSubmitter alice{4711, {4711, 500}};
  EXPECT_TRUE(CheckImage(fd.get(), socket_, true, &alice));  // root-owned tree
  ASSERT_EQ(::chown((root_ + "/img/lib/deep").c_str(), 4711, 0), 0);
  auto owned = CheckImage(fd.get(), socket_, true, &alice);
  ASSERT_FALSE(owned);
  EXPECT_NE(owned.error().message.find("lib/deep"), std::string::npos);
  EXPECT_TRUE(CheckImage(fd.get(), socket_, true, nullptr));
  ASSERT_EQ(::chown((root_ + "/img/lib/deep").c_str(), 0, 500), 0);
  ASSERT_EQ(::chmod((root_ + "/img/lib/deep").c_str(), 0775), 0);
  EXPECT_FALSE(CheckImage(fd.get(), socket_, true, &alice));  // group 500 may write
  const ImageSubmitter bob{4712, {4712}};
  EXPECT_TRUE(CheckImage(fd.get(), socket_, true, &bob));
}

}  // namespace
}  // namespace cordon::runner::internal
