// GPU discovery (the devices a spec's resources.gpus asks for, the driver files ldconfig knows)
// against a stand-in /dev this test makes; the OCI preparation is covered end to end by
// tests/runner/oci_test.sh and the extractor by oci_image_test.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "trainer_image.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::runner::internal {
namespace {

namespace fs = std::filesystem;

TEST(Ldconfig, KeepsNativeCudaAndNvidiaLibrariesOnly) {
  utsname u{};
  uname(&u);
  const std::string arch = std::string(u.machine) == "aarch64" ? "AArch64" : "x86-64";
  const std::string text =
      "1234 libs found in cache `/etc/ld.so.cache'\n"
      "\tlibcuda.so.1 (libc6," + arch + ") => /usr/lib/x86_64-linux-gnu/libcuda.so.1\n"
      "\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n"
      "\tlibnvidia-ml.so.1 (libc6," + arch + ") => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1\n"
      "\tlibcudart.so.12 (libc6," + arch + ") => /usr/local/cuda/lib64/libcudart.so.12\n"
      "\tlibc.so.6 (libc6," + arch + ", OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6\n"
      "\tlibnvidia-evil.so (libc6," + arch + ") => relative/path.so\n";
  const auto libs = ParseLdconfig(text);
  ASSERT_EQ(libs.size(), 2u);
  EXPECT_EQ(libs[0].first, "libcuda.so.1");
  EXPECT_EQ(libs[0].second, "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
  EXPECT_EQ(libs[1].first, "libnvidia-ml.so.1");
}

class FakeDev : public ::testing::Test {
 protected:
  cordon::testing::TempDir tmp_dir_{"gpu"};  // removed with the fixture
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "mknod needs root";
    dev_ = tmp_dir_.path();
  }
  void Node(const std::string& name) { ASSERT_EQ(mknod((dev_ / name).c_str(), S_IFCHR | 0666, makedev(1, 3)), 0); }
  fs::path dev_;
};

TEST_F(FakeDev, NoGpusAskedNothingBound) {
  auto none = FindGpus(0, dev_.string());
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->devices.empty());
}

TEST_F(FakeDev, AMissingDeviceIsNamed) {
  auto r = FindGpus(1, dev_.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(dev_.string() + "/nvidia0 does not exist"), std::string::npos) << r.error().message;
  Node("nvidia0");
  r = FindGpus(2, dev_.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nvidia1 does not exist"), std::string::npos) << r.error().message;
  r = FindGpus(1, dev_.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nvidiactl does not exist"), std::string::npos) << r.error().message;
  std::ofstream(dev_ / "nvidia1") << "a regular file is not a device";
  Node("nvidiactl");
  r = FindGpus(2, dev_.string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nvidia1 does not exist"), std::string::npos) << r.error().message;
}

TEST_F(FakeDev, DevicesFoundUvmWherePresent) {
  Node("nvidia0");
  Node("nvidia1");
  Node("nvidiactl");
  Node("nvidia-uvm");
  auto r = FindGpus(1, dev_.string());
  ASSERT_TRUE(r) << r.error().message;
  const std::vector<std::string> want = {dev_ / "nvidia0", dev_ / "nvidiactl", dev_ / "nvidia-uvm"};
  EXPECT_EQ(r->devices, want);  // nvidia1 not asked for: not bound
}

}  // namespace
}  // namespace cordon::runner::internal
