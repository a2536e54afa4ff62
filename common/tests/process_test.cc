#include "cordon/process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cordon {
namespace {

TEST(ProcessStartTime, KnowsTheLivingAndNotTheDead) {
  const std::uint64_t self = ProcessStartTime(::getpid());
  EXPECT_GT(self, 0u);
  EXPECT_EQ(ProcessStartTime(::getpid()), self);  // stable
  const pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  const std::uint64_t born = ProcessStartTime(child);
  EXPECT_GE(born, self);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_EQ(ProcessStartTime(child), 0u);  // reaped: gone
  EXPECT_EQ(ProcessStartTime(-1), 0u);
}

}  // namespace
}  // namespace cordon
