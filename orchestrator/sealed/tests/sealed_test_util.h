// Test fixture for sealed files: a temp dir with a real local keyring.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "cordon/sealed/sealed.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::sealed::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void WriteAll(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

inline std::string RandomBytes(std::size_t n, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

inline bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class SealedFixture : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"sealed"};  // removed with the fixture
  void SetUp() override {
    dir_ = tmp_dir_.path();
    kms_ = CachedKeyManagers(kms::Options{dir_ + "/keys", std::nullopt});
    auto local = kms_.get("local");
    ASSERT_TRUE(local) << local.error().message;
    local_ = *local;
    ASSERT_TRUE(local_->Create("k"));
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Seals `plain` (via a file) into NAME.sealed and returns its path.
  std::string Seal(const std::string& plain, std::uint32_t chunk, const std::string& name = "f",
                   const std::string& dataset = "customers") {
    const std::string in = Path(name + ".plain");
    const std::string out = Path(name + ".sealed");
    WriteAll(in, plain);
    SealOptions o{KeyRef{"local", "k"}, dataset, "", chunk, {}};
    auto r = SealFile(in, out, kms_, o);
    EXPECT_TRUE(r) << r.error().message;
    return out;
  }

  // Unseals `sealed` to a fresh path; on failure asserts nothing was left behind.
  Result<std::string> Unseal(const std::string& sealed) {
    const std::string out = Path("out-" + std::to_string(counter_++));
    auto r = UnsealFile(sealed, out, kms_, Replace::kRefuse);
    if (!r) {
      EXPECT_FALSE(Exists(out)) << "output left behind after: " << r.error().message;
      EXPECT_EQ(LeftoverCount(), 0u) << "temp files left behind";
      return std::unexpected(r.error());
    }
    std::string data = ReadAll(out);
    std::filesystem::remove(out);
    return data;
  }

  std::size_t LeftoverCount() const {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.path().filename().string().find(".cordon-tmp.") != std::string::npos) ++n;
    }
    return n;
  }

  std::string dir_;
  KeyManagers kms_;
  kms::KeyManager* local_ = nullptr;
  int counter_ = 0;
};

}  // namespace cordon::sealed::testing
