#include "cordon/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "cordon/file_io.h"
#include "cordon/testing/temp_dir.h"

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

// A pipe whose ends close themselves.
struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

std::string ReadToEnd(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = RetryEintr([&] { return ::read(fd, buf, sizeof buf); })) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

// Runs `sh -c script` with stdout to a pipe; its output and wait status.
std::pair<std::string, int> Sh(const std::string& script, SpawnOptions options = {}) {
  Pipe out;
  options.argv = {"/bin/sh", "-c", script};
  options.stdout_fd = out.write.get();
  auto child = Spawn(options);
  if (!child) throw std::runtime_error(child.error().message);
  out.write.reset();
  std::string text = ReadToEnd(out.read.get());
  auto status = WaitChild(child->pid);
  if (!status) throw std::runtime_error(status.error().message);
  return {text, *status};
}

TEST(Spawn, RunsTheProgramAndReportsItsExit) {
  const auto [out, status] = Sh("echo hello; exit 3");
  EXPECT_EQ(out, "hello\n");
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
}

TEST(Spawn, GivesStdinFromAnFdOrDevNull) {
  EXPECT_EQ(Sh("cat").first, "");  // /dev/null: at once at its end
  Pipe in;
  ASSERT_TRUE(WriteAll(in.write.get(), std::string_view("from the parent")));
  in.write.reset();
  SpawnOptions options;
  options.stdin_fd = in.read.get();
  EXPECT_EQ(Sh("cat", options).first, "from the parent");
}

TEST(Spawn, WritesStderrToANewPrivateFile) {
  testing::TempDir dir("spawn");
  SpawnOptions options;
  options.stderr_path = dir.path() + "/err";
  EXPECT_EQ(Sh("echo oops >&2", options).first, "");
  std::ifstream in(options.stderr_path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "oops\n");
  struct stat st {};
  ASSERT_EQ(::stat(options.stderr_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Spawn, PassesOnlyTheNamedFds) {
  Pipe kept, other;
  SpawnOptions options;
  options.pass_fds = {kept.write.get()};
  const std::string script = "test -e /proc/self/fd/" + std::to_string(kept.write.get()) + " && echo kept; " +
                             "test -e /proc/self/fd/" + std::to_string(other.write.get()) + " && echo leaked; true";
  EXPECT_EQ(Sh(script, options).first, "kept\n");
}

TEST(Spawn, UsesTheGivenEnvironmentOrOurs) {
  ASSERT_EQ(::setenv("CORDON_SPAWN_TEST", "inherited", 1), 0);
  EXPECT_EQ(Sh("echo \"$CORDON_SPAWN_TEST\"").first, "inherited\n");
  SpawnOptions options;
  options.env = std::vector<std::string>{"CORDON_OTHER=given"};
  EXPECT_EQ(Sh("echo \"$CORDON_SPAWN_TEST/$CORDON_OTHER\"", options).first, "/given\n");
  ::unsetenv("CORDON_SPAWN_TEST");
}

TEST(Spawn, StartsANewSessionWhenAsked) {
  SpawnOptions options;
  options.argv = {"/bin/sleep", "30"};
  options.setsid = true;
  auto child = Spawn(options);
  ASSERT_TRUE(child) << child.error().message;
  EXPECT_EQ(::getsid(child->pid), child->pid);
  ASSERT_TRUE(PidfdSignal(child->pidfd.get(), SIGKILL));
  ASSERT_TRUE(WaitChild(child->pid));
}

TEST(Spawn, ThePidfdSignalsAndTellsOfTheExit) {
  // An ignored SIGTERM here is not passed on: the child dies of it.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGTERM, &ignore, &old), 0);
  SpawnOptions options;
  options.argv = {"/bin/sleep", "30"};
  auto child = Spawn(options);
  ::sigaction(SIGTERM, &old, nullptr);
  ASSERT_TRUE(child) << child.error().message;
  pollfd p{child->pidfd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // still running
  ASSERT_TRUE(PidfdSignal(child->pidfd.get(), SIGTERM));
  EXPECT_EQ(::poll(&p, 1, 10000), 1);  // readable once it exited
  auto status = WaitChild(child->pid);
  ASSERT_TRUE(status) << status.error().message;
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGTERM);
  EXPECT_FALSE(WaitChild(child->pid));  // reaped: nothing left to wait for
}

TEST(Spawn, RefusesWhatItCannotStartNamingIt) {
  SpawnOptions missing;
  missing.argv = {"/nonexistent/cordon-program"};
  auto child = Spawn(missing);
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().message.find("/nonexistent/cordon-program"), std::string::npos) << child.error().message;

  SpawnOptions bad_fd;
  bad_fd.argv = {"/bin/true"};
  bad_fd.pass_fds = {-5};  // refused by the checked file action, before any child exists
  child = Spawn(bad_fd);
  ASSERT_FALSE(child);
  EXPECT_NE(child.error().message.find("pass fd -5"), std::string::npos) << child.error().message;

  SpawnOptions closed_fd;
  closed_fd.argv = {"/bin/true"};
  closed_fd.stdout_fd = 1000;  // a valid number but not open: the child's dup2 fails
  child = Spawn(closed_fd);
  EXPECT_FALSE(child);

  SpawnOptions bad_stderr;
  bad_stderr.argv = {"/bin/true"};
  bad_stderr.stderr_path = "/nonexistent/dir/err";
  EXPECT_FALSE(Spawn(bad_stderr));
  EXPECT_FALSE(Spawn(SpawnOptions{}));
}

TEST(RetryEintr, RetriesOnlyEintr) {
  int calls = 0;
  EXPECT_EQ(RetryEintr([&] {
              errno = ++calls < 3 ? EINTR : 0;
              return calls < 3 ? -1 : 7;
            }),
            7);
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_EQ(RetryEintr([&] {
              ++calls;
              errno = EBADF;
              return -1;
            }),
            -1);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace cordon
