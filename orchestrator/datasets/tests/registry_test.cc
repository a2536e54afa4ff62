// The dataset registry's storage: crash-safe documents, version lookup, the
// lock, and a document that is not ours refused.
#include "cordon/datasets/datasets.h"
#include "cordon/testing/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace cordon::datasets {
namespace {

class RegistryTest : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"registry"};  // removed with the fixture
  void SetUp() override {
    dir_ = tmp_dir_.path();
  }
  std::string dir_;
};

Version V(const std::string& hex) {
  Version v;
  v.id = "sha256:" + hex;
  v.path = "/srv/d.sealed";
  return v;
}

TEST_F(RegistryTest, UpdateIsDurableAndLoadsBack) {
  auto reg = Registry::Open(dir_);
  ASSERT_TRUE(reg) << reg.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/datasets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string a(64, 'a'), b = std::string(12, 'a') + std::string(52, 'b');
  auto d = reg->Update("churn", [&](Dataset& ds) {
    ds.versions.push_back(V(a));
    ds.versions.push_back(V(b));
    ds.current = ds.versions.back().id;
    return Status{};
  });
  ASSERT_TRUE(d);
  auto loaded = reg->Load("churn");
  ASSERT_TRUE(loaded && *loaded);
  EXPECT_EQ((*loaded)->versions.size(), 2u);
  EXPECT_EQ((*loaded)->current, "sha256:" + b);
  // Lookup: full id, unique prefix; an ambiguous or short prefix is refused.
  EXPECT_TRUE((*loaded)->Resolve("sha256:" + a));
  EXPECT_TRUE((*loaded)->Resolve(std::string(12, 'a') + "bb"));
  EXPECT_FALSE((*loaded)->Resolve(std::string(12, 'a')));
  EXPECT_FALSE((*loaded)->Resolve("aaaa"));
  EXPECT_EQ(reg->Names().value(), std::vector<std::string>{"churn"});
  EXPECT_FALSE(*reg->Load("other"));
}

TEST_F(RegistryTest, AFailedChangeWritesNothing) {
  auto reg = Registry::Open(dir_);
  ASSERT_TRUE(reg);
  ASSERT_TRUE(reg->Update("d", [](Dataset& ds) { ds.current = "x"; return Status{}; }));
  EXPECT_FALSE(reg->Update("d", [](Dataset& ds) {
    ds.current = "y";
    return Status(Fail(Errc::kInvalidArgument, "no"));
  }));
  EXPECT_EQ((*reg->Load("d"))->current, "x");
}

TEST_F(RegistryTest, NamesThatAreNotFileNamesAreStoredSafely) {
  auto reg = Registry::Open(dir_);
  ASSERT_TRUE(reg);
  ASSERT_TRUE(reg->Update("..", [](Dataset&) { return Status{}; }));
  ASSERT_TRUE(reg->Update(".hidden name", [](Dataset&) { return Status{}; }));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/datasets/...json"));
  EXPECT_EQ(reg->Names().value(), (std::vector<std::string>{"..", ".hidden name"}));
  EXPECT_FALSE(reg->Update("a/b", [](Dataset&) { return Status{}; }));  // not a dataset name
}

TEST_F(RegistryTest, AWorldReadableRegistryIsRefused) {
  ASSERT_TRUE(Registry::Open(dir_));
  ::chmod((dir_ + "/datasets").c_str(), 0755);
  EXPECT_FALSE(Registry::Open(dir_));
}

TEST_F(RegistryTest, ATornOrForeignDocumentIsAnError) {
  auto reg = Registry::Open(dir_);
  ASSERT_TRUE(reg);
  std::ofstream(dir_ + "/datasets/x.json") << "{\"name\": \"y\", \"versions\": []}";
  EXPECT_FALSE(reg->Load("x"));
  std::ofstream(dir_ + "/datasets/z.json") << "{\"name\": ";
  EXPECT_FALSE(reg->Load("z"));
}

}  // namespace
}  // namespace cordon::datasets
