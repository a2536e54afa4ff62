// SecretBytes: locked, zeroed, wiped; a released page comes back for the next
// secret zeroed and still locked, and a forked child never reuses the parent's.
#include "cordon/secret.h"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace cordon {
namespace {

bool AllZero(const SecretBytes& s) {
  return std::all_of(s.data(), s.data() + s.size(), [](std::uint8_t b) { return b == 0; });
}

// The VmLck line of /proc/self/status, in kB.
long LockedKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmLck:")) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(SecretBytes, AReleasedPageComesBackZeroedAndLocked) {
  const std::uint8_t* first = nullptr;
  {
    SecretBytes a(32);
    if (!a.locked()) GTEST_SKIP() << "mlock refused (RLIMIT_MEMLOCK)";
    std::fill(a.data(), a.data() + a.size(), 0xa5);
    first = a.data();
  }
  SecretBytes b(64);
  EXPECT_EQ(b.data(), first);  // the same page, taken from the pool
  EXPECT_TRUE(b.locked());
  EXPECT_TRUE(AllZero(b));
  // Kept pages stay locked; many secrets at once still each get a locked page.
  const long before = LockedKb();
  std::vector<SecretBytes> many;
  for (int i = 0; i < 200; ++i) many.emplace_back(16);
  for (const SecretBytes& s : many) {
    EXPECT_TRUE(s.locked());
    EXPECT_TRUE(AllZero(s));
  }
  EXPECT_GE(LockedKb(), before);
  many.clear();
  SecretBytes big(3 * 4096);  // more than a page: a mapping of its own
  EXPECT_TRUE(AllZero(big));
}

TEST(SecretBytes, AForkedChildDoesNotReuseTheParentsPages) {
  const std::uint8_t* kept = nullptr;
  {
    SecretBytes a(32);
    if (!a.locked()) GTEST_SKIP() << "mlock refused (RLIMIT_MEMLOCK)";
    a.data()[0] = 7;
    kept = a.data();
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SecretBytes c(32);  // the pool was forgotten: a fresh, locked mapping
    ::_exit(c.data() != kept && c.locked() && AllZero(c) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  SecretBytes again(32);
  EXPECT_EQ(again.data(), kept);  // the parent's pool is intact
}

}  // namespace
}  // namespace cordon
