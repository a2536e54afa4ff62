// `cordon outputs extract` on real sealed files: a good tree is restored; a
// hostile index (even though sealed) cannot write outside DEST, and files that
// are not the index's (hash, job, dataset, a link) are refused.
#include "cordon/runner/outputs.h"
#include "cordon/testing/temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace cordon::runner {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ExtractTest : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"extract"};  // removed with the fixture
  void SetUp() override {
    dir_ = tmp_dir_.path();
    kms_ = sealed::CachedKeyManagers(kms::Options{dir_ + "/keys", std::nullopt});
    auto local = kms_.get("local");
    ASSERT_TRUE(local) << local.error().message;
    ASSERT_TRUE((*local)->Create("models"));
    fs::create_directories(dir_ + "/job");
  }

  // Seals `plain` as job/<file> with the given dataset and job; returns its sha256.
  std::string Seal(const std::string& file, const std::string& plain, const std::string& dataset,
                   const std::string& job = "j-1") {
    const std::string in = dir_ + "/plain";
    std::ofstream(in, std::ios::trunc) << plain;
    sealed::SealOptions o{KeyRef{"local", "models"}, dataset, job, sealed::kDefaultChunkBytes, {}};
    auto r = sealed::SealFile(in, dir_ + "/job/" + file, kms_, o);
    EXPECT_TRUE(r) << r.error().message;
    fs::remove(in);
    return r ? r->sha256 : "";
  }

  void Index(const json& entries, const std::string& job = "j-1") {
    fs::remove(dir_ + "/job/index.sealed");
    Seal("index.sealed", entries.dump(), "index", job);
  }

  Result<Extracted> Extract() { return ExtractOutputs(dir_ + "/job", dir_ + "/dest", kms_); }

  std::string Read(const std::string& rel) {
    std::ifstream f(dir_ + "/dest/" + rel);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  std::string dir_;
  sealed::KeyManagers kms_;
};

TEST_F(ExtractTest, RestoresTheTree) {
  const std::string a = Seal("out-000001.sealed", "model", "out-000001");
  const std::string b = Seal("out-000002.sealed", "notes", "out-000002");
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "Jane_Doe/model.bin"}, {"size", 5}, {"sha256", a}},
                     {{"file", "out-000002.sealed"}, {"path", "notes.txt"}, {"size", 5}, {"sha256", b}},
                     {{"path", "link"}, {"refused", "symlink"}}}));
  auto done = Extract();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->job, "j-1");
  EXPECT_EQ(done->files, 2u);
  EXPECT_EQ(done->bytes, 10u);
  EXPECT_EQ(done->refused, 1u);
  EXPECT_EQ(Read("Jane_Doe/model.bin"), "model");
  EXPECT_EQ(Read("notes.txt"), "notes");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/dest").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(ExtractTest, UnsafeIndexPathsWriteNothingOutsideDest) {
  const std::string a = Seal("out-000001.sealed", "evil", "out-000001");
  for (const std::string path : {"../evil", "/tmp/evil-abs", "a//b", "a/./b", "a/../../evil", "", "a/", "x\ny"}) {
    SCOPED_TRACE(path);
    Index(json::array({{{"file", "out-000001.sealed"}, {"path", path}, {"size", 4}, {"sha256", a}}}));
    fs::remove_all(dir_ + "/dest");
    auto done = Extract();
    ASSERT_FALSE(done);
    EXPECT_EQ(done.error().code, Errc::kInvalidData);
    EXPECT_EQ(done.error().message.find(path.empty() ? "\x01" : path), std::string::npos);  // names no path
    EXPECT_FALSE(fs::exists(dir_ + "/evil"));
    EXPECT_FALSE(fs::exists("/tmp/evil-abs"));
    EXPECT_FALSE(fs::exists(dir_ + "/dest"));  // checked before DEST is made
  }
  // Members of the wrong type are a malformed index, not an exception.
  Index(json::array({{{"file", 1}, {"path", "f"}, {"sha256", a}}}));
  auto done = Extract();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Errc::kInvalidData);
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", json::array({"f"})}, {"sha256", a}}}));
  EXPECT_FALSE(Extract());
  Index(json::array({"out-000001.sealed"}));
  EXPECT_FALSE(Extract());
}

TEST_F(ExtractTest, DestMustBeNew) {
  Index(json::array());
  fs::create_directories(dir_ + "/dest");
  EXPECT_FALSE(Extract());
}

// A failure part-way (here the second file is not the index's) leaves no DEST and no plaintext of
// the files restored before it: the tree appears whole or not at all.
TEST_F(ExtractTest, AFailurePartWayLeavesNoPlaintext) {
  const std::string a = Seal("out-000001.sealed", "first secret", "out-000001");
  Seal("out-000002.sealed", "second", "out-000002");
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "a/one.txt"}, {"size", 12}, {"sha256", a}},
                     {{"file", "out-000002.sealed"}, {"path", "two.txt"}, {"size", 6}, {"sha256", "sha256:00"}}}));
  auto done = Extract();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Errc::kIntegrity);
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find("dest"), std::string::npos) << e.path();
  }
}

TEST_F(ExtractTest, FilesThatAreNotTheIndexsAreRefused) {
  const std::string a = Seal("out-000001.sealed", "x", "out-000001");
  // The sha256 differs from the index's.
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "f"}, {"size", 1}, {"sha256", "sha256:00"}}}));
  auto done = Extract();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Errc::kIntegrity);
  // Another job's file under this job's name.
  fs::remove(dir_ + "/job/out-000001.sealed");
  const std::string other = Seal("out-000001.sealed", "x", "out-000001", "j-2");
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "f"}, {"size", 1}, {"sha256", other}}}));
  fs::remove_all(dir_ + "/dest");
  done = Extract();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, Errc::kInvalidData);
  // Output 2 renamed to output 1: the header's dataset says which it is.
  fs::remove(dir_ + "/job/out-000001.sealed");
  const std::string two = Seal("out-000001.sealed", "x", "out-000002");
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "f"}, {"size", 1}, {"sha256", two}}}));
  fs::remove_all(dir_ + "/dest");
  EXPECT_FALSE(Extract());
  // A name the runner never makes, and a symlink in the job directory.
  Index(json::array({{{"file", "../keys/x.sealed"}, {"path", "f"}, {"size", 1}, {"sha256", a}}}));
  fs::remove_all(dir_ + "/dest");
  EXPECT_FALSE(Extract());
  fs::remove(dir_ + "/job/out-000001.sealed");
  fs::create_symlink(dir_ + "/elsewhere.sealed", dir_ + "/job/out-000001.sealed");
  Index(json::array({{{"file", "out-000001.sealed"}, {"path", "f"}, {"size", 1}, {"sha256", a}}}));
  fs::remove_all(dir_ + "/dest");
  EXPECT_FALSE(Extract());
}

}  // namespace
}  // namespace cordon::runner
