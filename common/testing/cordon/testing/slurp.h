// A whole file as a string, for assertions: "" when it cannot be read (a test
// compares it with what it expects, so a missing file fails there).
// For tests only (target cordon::testing).
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace cordon::testing {

inline std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace cordon::testing
