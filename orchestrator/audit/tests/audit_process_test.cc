// Real processes: several appending at once (flock + group commit), and
// kill -9 in the middle of appending, then recovery and verification.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "cordon/audit/audit.h"
#include "cordon/audit/verify.h"

namespace cordon::audit {
namespace {

namespace fs = std::filesystem;

pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return status;
}

class AuditProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("cordon-audit-proc-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "audit");
    dir_ = (root_ / "audit").string();
    vkey_ = (root_ / "verifier.key").string();
    ASSERT_TRUE(CreateAuditKeys(dir_, vkey_));
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  std::string dir_;
  std::string vkey_;
};

TEST_F(AuditProcessTest, ConcurrentProcessesLeaveOneValidChain) {
  constexpr int kProcesses = 4;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;  // 2400 entries in all
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pids.push_back(Spawn({AUDIT_HELPER, dir_, std::to_string(kPerThread), std::to_string(kThreads),
                          "P" + std::to_string(p)}));
  }
  for (pid_t pid : pids) {
    const int status = Wait(pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "helper status " << status;
  }
  auto r = Verify({dir_, vkey_, std::nullopt, {}, 0, 0});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->failure.has_value()) << r->failure->file << ":" << r->failure->line << " " << r->failure->detail;
  EXPECT_EQ(r->entries, 1u + kProcesses * kThreads * kPerThread);
  for (int p = 0; p < kProcesses; ++p) {
    auto mine = ReadEntries(dir_, {.job = "P" + std::to_string(p), .since = std::nullopt, .action_glob = std::nullopt});
    ASSERT_TRUE(mine);
    EXPECT_EQ(mine->size(), std::size_t{kThreads * kPerThread});
  }
}

TEST_F(AuditProcessTest, KillNineDuringAppendsThenRecoveryVerifies) {
  std::uint64_t before = 1;
  for (int round = 0; round < 4; ++round) {
    const pid_t pid = Spawn({AUDIT_HELPER, dir_, "0", "3", "K" + std::to_string(round)});
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 70 * round));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    const int status = Wait(pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "helper ended before the kill: " << status;
    // The next process to open the log recovers it (a torn tail, a stale key state).
    auto log = AuditLog::Open({.dir = dir_});
    ASSERT_TRUE(log) << log.error().message;
    ASSERT_TRUE((*log)->Append({.action = "test.resumed", .job = "", .outcome = "ok",
                                .details = {{"round", round}}, .actor = std::nullopt}));
    auto r = Verify({dir_, vkey_, std::nullopt, {}, 0, 0});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(r->failure.has_value()) << r->failure->file << ":" << r->failure->line << " " << r->failure->detail;
    EXPECT_GT(r->entries, before + 1) << "the killed helper appended nothing";
    before = r->entries;
  }
}

}  // namespace
}  // namespace cordon::audit
