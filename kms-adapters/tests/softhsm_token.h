// A throwaway SoftHSM2 token for tests: its own token directory and config
// file in a temp dir (SOFTHSM2_CONF points there), initialised with
// softhsm2-util. Tests skip with a reason when SoftHSM2 is not installed.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cordon/kms/kms.h"

namespace cordon::kms::testing {

inline constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsmToken {
 public:
  // Returns an empty string on success, else why the token could not be made.
  std::string Init(const std::string& label = "cordon-test") {
    if (::access(kSoftHsmModule, R_OK) != 0) return std::string(kSoftHsmModule) + " is not installed";
    char tmpl[] = "/tmp/cordon-softhsm-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    std::filesystem::create_directory(dir_ + "/tokens");
    std::ofstream(dir_ + "/softhsm2.conf") << "directories.tokendir = " << dir_
                                           << "/tokens\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", (dir_ + "/softhsm2.conf").c_str(), 1);
    const std::string cmd = "softhsm2-util --init-token --free --label " + label +
                            " --pin 1234 --so-pin 5678 >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return "softhsm2-util --init-token failed";
    WritePin("1234");
    options_ = Pkcs11Options{kSoftHsmModule, label, dir_ + "/pin"};
    return "";
  }
  ~SoftHsmToken() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void WritePin(const std::string& pin) {
    std::ofstream(dir_ + "/pin", std::ios::trunc) << pin << "\n";
    ::chmod((dir_ + "/pin").c_str(), 0600);
  }
  [[nodiscard]] const Pkcs11Options& options() const { return options_; }
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  Pkcs11Options options_;
};

}  // namespace cordon::kms::testing
