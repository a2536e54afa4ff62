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
#include "cordon/file_io.h"
#include "cordon/process.h"
#include "internal.h"

namespace cordon::audit {
namespace {

namespace fs = std::filesystem;

// The append helper as a real child process (cordon::Spawn), reaped by Wait.
pid_t Spawn(const std::vector<std::string>& args) {
  SpawnOptions options;
  options.argv = args;
  auto child = cordon::Spawn(options);
  EXPECT_TRUE(child) << child.error().message;
  return child ? child->pid : -1;
}

int Wait(pid_t pid) {
  auto status = WaitChild(pid);
  EXPECT_TRUE(status) << status.error().message;
  return status ? *status : -1;
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

std::string ReadFile(const std::string& path) {
  auto text = ReadFileLimited(path, 64 << 20);
  EXPECT_TRUE(text) << text.error().message;
  return text ? *text : std::string();
}

void WriteFile(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomic(path, text, 0600)) << path;
}

// A power cut loses what the segment held only in the page cache: the
// appends a killed process was told were durable must come back from the
// journal in mac.state, wherever the cut falls.
TEST_F(AuditProcessTest, KillNineThenLostSegmentTailIsReplayedFromJournal) {
  std::uint64_t expected = 1;
  // Cut points inside the journaled tail: none (kill -9 only), all of it,
  // mid-line, all but the last line, one byte short.
  for (int round = 0; round < 5; ++round) {
    const pid_t pid = Spawn({AUDIT_HELPER, dir_, "130", "1", "C" + std::to_string(round), "crash"});
    const int status = Wait(pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    expected += 130;  // never a multiple of the helper's checkpoint interval (100) + 1
    auto state = internal::DecodeState(ReadFile(dir_ + "/mac.state"));
    ASSERT_TRUE(state) << state.error().message;
    ASSERT_EQ(state->seq, expected);
    ASSERT_LT(state->journal_seq, state->seq) << "nothing journaled: the test would prove nothing";
    auto segments = internal::ListSegments(dir_);
    ASSERT_TRUE(segments && !segments->empty());
    const std::string path = segments->back().path;
    std::string seg = ReadFile(path);
    // The offset where the journal's first line starts in the segment.
    std::size_t from = 0;
    for (std::uint64_t s = segments->back().first_seq; s < state->journal_seq; ++s) from = seg.find('\n', from) + 1;
    const std::size_t last = seg.rfind('\n', seg.size() - 2) + 1;
    const std::size_t cuts[] = {seg.size(), from, from + 37, last, seg.size() - 1};
    seg.resize(cuts[round]);
    WriteFile(path, seg);
    {
      auto log = AuditLog::Open({.dir = dir_});
      ASSERT_TRUE(log) << log.error().message;
    }
    auto r = Verify({dir_, vkey_, std::nullopt, {}, 0, 0});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_FALSE(r->failure.has_value()) << "round " << round << ": " << r->failure->file << ":" << r->failure->line
                                         << " " << r->failure->detail;
    EXPECT_EQ(r->entries, expected) << "round " << round;
    for (const auto& e : fs::directory_iterator(dir_)) {
      EXPECT_FALSE(e.path().filename().string().starts_with("torn-")) << "round " << round << ": " << e.path();
    }
  }
  auto recovered = ReadEntries(dir_, {.job = std::nullopt, .since = std::nullopt, .action_glob = "log.*"});
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->size(), 1u) << "only log.created: a replay is not a gap or a torn line";
}

// What the journal cannot replay is never papered over: a lost segment tail
// and a journal that no longer holds it (deleted, or a torn flush) is a gap.
TEST_F(AuditProcessTest, LostSegmentTailAndJournalIsAGap) {
  const pid_t pid = Spawn({AUDIT_HELPER, dir_, "120", "1", "G", "crash"});
  const int status = Wait(pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  std::string mac = ReadFile(dir_ + "/mac.state");
  auto state = internal::DecodeState(mac);
  ASSERT_TRUE(state);
  ASSERT_LT(state->journal_seq, state->seq);
  auto segments = internal::ListSegments(dir_);
  ASSERT_TRUE(segments);
  std::string seg = ReadFile(segments->back().path);
  std::size_t from = 0;
  for (std::uint64_t s = segments->back().first_seq; s < state->journal_seq; ++s) from = seg.find('\n', from) + 1;
  seg.resize(from);
  WriteFile(segments->back().path, seg);
  // The journal's second line torn: the first replays, the rest is a gap.
  const std::size_t second = mac.find('\n', internal::kStateRecordBytes) + 1;
  mac[second + 10] = 'X';
  WriteFile(dir_ + "/mac.state", mac);
  {
    auto log = AuditLog::Open({.dir = dir_});
    ASSERT_TRUE(log) << log.error().message;
  }
  auto gap = ReadEntries(dir_, {.job = std::nullopt, .since = std::nullopt, .action_glob = "log.gap_detected"});
  ASSERT_TRUE(gap);
  ASSERT_EQ(gap->size(), 1u);
  EXPECT_EQ((*gap)[0]["details"]["missing_from_seq"], state->journal_seq + 1);
  EXPECT_EQ((*gap)[0]["details"]["missing_to_seq"], state->seq - 1);
  auto r = Verify({dir_, vkey_, std::nullopt, {}, 0, 0});
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->failure.has_value());
  EXPECT_EQ(r->failure->tamper, Tamper::kDeleted);
}

}  // namespace
}  // namespace cordon::audit
