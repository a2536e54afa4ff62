// Step 2's quarantine check against a real registry and a real file: a version
// quarantined by hash, a whole dataset, a pin taken as the file's identity, the
// file hashed only when a quarantined version could be it, and an unreadable
// registry refused.
#include "cordon/datasets/quarantine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "cordon/datasets/datasets.h"
#include "cordon/testing/temp_dir.h"
#include "cordon/unique_fd.h"

namespace cordon::datasets {
namespace {

class QuarantineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = tmp_.path() + "/churn.sealed";
    std::ofstream(file_) << "stands in for a sealed file: only its bytes are hashed";
    fd_.reset(::open(file_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd_);
    sha_ = sealed::Sha256Fd(fd_.get()).value();
  }
  // Registers `id` (plaintext size `bytes`) as a version of churn, quarantined or not.
  void AddVersion(const std::string& id, std::uint64_t bytes, bool quarantined) {
    auto reg = Registry::Open(tmp_.path());
    ASSERT_TRUE(reg);
    ASSERT_TRUE(reg->Update("churn", [&](Dataset& d) {
      Version v;
      v.id = id;
      v.plaintext_bytes = bytes;
      v.quarantined = quarantined;
      v.quarantine_reason = quarantined ? "labels flipped" : "";
      d.versions.push_back(v);
      return Status{};
    }));
  }
  Result<std::optional<QuarantineHit>> Check(std::string& sha) {
    return CheckQuarantine(tmp_.path(), "churn", fd_.get(), kPlaintextBytes, sha);
  }

  cordon::testing::TempDir tmp_{"quarantine"};
  std::string file_, sha_;
  UniqueFd fd_;
  static constexpr std::uint64_t kPlaintextBytes = 1000;
};

TEST_F(QuarantineTest, AnUnknownOrCleanDatasetPasses) {
  std::string sha;
  auto none = Check(sha);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(*none);
  AddVersion(sha_, 1000, false);
  auto clean = Check(sha);
  ASSERT_TRUE(clean);
  EXPECT_FALSE(*clean);
  EXPECT_EQ(sha, "") << "no quarantined version: nothing to hash";
}

TEST_F(QuarantineTest, AQuarantinedVersionIsFoundByHashingTheFile) {
  AddVersion("sha256:" + std::string(64, 'a'), 1000, false);
  AddVersion(sha_, 1000, true);
  std::string sha;
  auto hit = Check(sha);
  ASSERT_TRUE(hit) << hit.error().message;
  ASSERT_TRUE(*hit);
  EXPECT_EQ(sha, sha_) << "hashed through the fd";
  EXPECT_EQ((*hit)->version, sha_);
  EXPECT_EQ((*hit)->reason, "labels flipped");
  EXPECT_EQ((*hit)->message, "dataset 'churn' version " + sha_ +
                                 " is quarantined (labels flipped); release it with `cordon release churn@" + sha_ + "`");
}

TEST_F(QuarantineTest, APinIsTakenAsTheFilesIdentity) {
  AddVersion("sha256:" + std::string(64, 'b'), 1000, true);
  std::string pin = "sha256:" + std::string(64, 'b');  // not this file: the runner would refuse it anyway
  auto hit = Check(pin);
  ASSERT_TRUE(hit && *hit);
  EXPECT_EQ((*hit)->version, pin);
  std::string other = "sha256:" + std::string(64, 'c');
  auto pass = Check(other);
  ASSERT_TRUE(pass);
  EXPECT_FALSE(*pass) << "a pin of a version that is not quarantined";
}

TEST_F(QuarantineTest, AFileOfAnotherSizeIsNotHashed) {
  AddVersion(sha_, 999, true);  // the registry says another plaintext size: cannot be this file
  std::string sha;
  auto pass = Check(sha);
  ASSERT_TRUE(pass);
  EXPECT_FALSE(*pass);
  EXPECT_EQ(sha, "");
  // A version whose size the registry does not know (quarantined before it was ever
  // registered) is always compared by hash.
  auto reg = Registry::Open(tmp_.path());
  ASSERT_TRUE(reg->Update("churn", [&](Dataset& d) {
    d.versions[0].plaintext_bytes = 0;
    return Status{};
  }));
  auto hit = Check(sha);
  ASSERT_TRUE(hit && *hit);
  EXPECT_EQ(sha, sha_);
}

TEST_F(QuarantineTest, AWholeDatasetRefusesEveryFileWithoutHashing) {
  auto reg = Registry::Open(tmp_.path());
  ASSERT_TRUE(reg->Update("churn", [&](Dataset& d) {
    d.quarantined = true;
    d.quarantine_reason = "source compromised";
    return Status{};
  }));
  std::string sha;
  auto hit = Check(sha);
  ASSERT_TRUE(hit && *hit);
  EXPECT_EQ((*hit)->version, "");
  EXPECT_EQ((*hit)->message,
            "dataset 'churn' is quarantined (source compromised); release it with `cordon release churn`");
  EXPECT_EQ(sha, "");
}

TEST_F(QuarantineTest, AnUnreadableRegistryIsAnError) {
  AddVersion(sha_, 1000, true);
  ASSERT_EQ(::chmod((tmp_.path() + "/datasets").c_str(), 0755), 0);  // not 0700: not trusted
  std::string sha;
  auto refused = Check(sha);
  EXPECT_FALSE(refused) << "fail closed";
}

}  // namespace
}  // namespace cordon::datasets
