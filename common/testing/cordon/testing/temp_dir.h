// A test's own temporary directory: /tmp/cordon-<name>-XXXXXX, made at
// construction (0700, mkdtemp) and removed with everything in it at destruction.
// For tests only (target cordon::testing).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace cordon::testing {

class TempDir final {
 public:
  explicit TempDir(const std::string& name) {
    std::string tmpl = "/tmp/cordon-" + name + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + " failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cordon::testing
