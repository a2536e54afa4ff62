#include "cordon/file_io.h"
#include "cordon/testing/temp_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace cordon {
namespace {

class FileIoTest : public ::testing::Test {
 protected:
  testing::TempDir temp_{"fileio"};
  std::string dir_ = temp_.path();
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST_F(FileIoTest, AtomicWriteCreatesWithModeAndReplaces) {
  const std::string path = dir_ + "/f";
  ASSERT_TRUE(WriteFileAtomic(path, "one", 0600).has_value());
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ReadFileLimited(path, 100).value(), "one");
  ASSERT_TRUE(WriteFileAtomic(path, "two", 0640).has_value());
  EXPECT_EQ(ReadFileLimited(path, 100).value(), "two");
  EXPECT_EQ(ModeOf(path), 0640u);
  // No temp files left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(FileIoTest, RefuseLeavesExistingUntouched) {
  const std::string path = dir_ + "/f";
  ASSERT_TRUE(WriteFileAtomic(path, "original", 0600).has_value());
  auto r = WriteFileAtomic(path, "new", 0600, Overwrite::kRefuse);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(ReadFileLimited(path, 100).value(), "original");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1);
}

TEST_F(FileIoTest, ReadSecretFileReadsIntoLockedMemoryWithTheSameLimits) {
  const std::string path = dir_ + "/key";
  ASSERT_TRUE(WriteFileAtomic(path, "seed 00112233\n", 0600));
  auto secret = ReadSecretFile(path, 100);
  ASSERT_TRUE(secret) << secret.error().message;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(secret->data()), secret->size()), "seed 00112233\n");
  EXPECT_FALSE(ReadSecretFile(path, 5));            // over the limit
  EXPECT_FALSE(ReadSecretFile(dir_, 100));          // not a regular file
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/empty", "", 0600));
  auto empty = ReadSecretFile(dir_ + "/empty", 100);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->size(), 0u);
  // A file as large as the limit is read whole (the buffer is sized once, file size + 1).
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/full", std::string(100, 'k'), 0600));
  EXPECT_EQ(ReadFileLimited(dir_ + "/full", 100).value(), std::string(100, 'k'));
  EXPECT_EQ(ReadSecretFile(dir_ + "/full", 100).value().size(), 100u);
}

TEST_F(FileIoTest, ReadRefusesOversizedAndNonRegular) {
  const std::string path = dir_ + "/big";
  ASSERT_TRUE(WriteFileAtomic(path, std::string(101, 'x'), 0600).has_value());
  auto r = ReadFileLimited(path, 100);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("101 bytes; the limit is 100"), std::string::npos);

  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto f = ReadFileLimited(fifo, 100);  // must not block waiting for a writer
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("not a regular file"), std::string::npos);

  auto d = ReadFileLimited(dir_, 100);
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().message.find("is a directory"), std::string::npos);

  auto missing = ReadFileLimited(dir_ + "/nope", 100);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
}

TEST_F(FileIoTest, PwriteAllAndPreadFullWorkAtOffsets) {
  const std::string path = dir_ + "/p";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(PwriteAll(fd, std::string_view("hello world"), 0));
  const std::uint8_t patch[] = {'W', 'O'};
  ASSERT_TRUE(PwriteAll(fd, std::span<const std::uint8_t>(patch), 6));
  std::uint8_t buf[32] = {};
  auto got = PreadFull(fd, std::span<std::uint8_t>(buf, 5), 6);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), 5), "WOrld");
  got = PreadFull(fd, buf, 3);  // past the end: what there is
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, 8u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf), 8), "lo WOrld");
  ::close(fd);
  const int ro = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  EXPECT_FALSE(PwriteAll(ro, std::string_view("x"), 0));  // EBADF: an error, not a loop
  ::close(ro);
}

TEST_F(FileIoTest, MakeDirSetsExactModeAndReportsExisting) {
  const mode_t old = ::umask(077);
  const std::string sub = dir_ + "/spool";
  auto created = MakeDir(sub, 01733);
  ::umask(old);
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(*created, DirState::kCreated);
  EXPECT_EQ(ModeOf(sub), 01733u);
  EXPECT_EQ(MakeDir(sub, 0700).value(), DirState::kExisted);
  EXPECT_EQ(ModeOf(sub), 01733u);  // left as it was

  ASSERT_TRUE(WriteFileAtomic(dir_ + "/file", "x", 0600).has_value());
  EXPECT_FALSE(MakeDir(dir_ + "/file", 0700).has_value());
}

}  // namespace
}  // namespace cordon
