// The run registry's sweep (run_registry.h) with real processes: a record whose `cordon run`
// died (a child spawned, killed, reaped) is removed; a live one, the caller's own and every
// file the strict reader refuses are left, the refused ones reported with the rule broken.
#include "run_registry.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cordon/process.h"
#include "cordon/testing/temp_dir.h"

namespace cordon::cli {
namespace {

class RunSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "run records are root's (the reader refuses any other owner)";
    runs_ = tmp_.path() + "/runs";
    ASSERT_EQ(::mkdir(runs_.c_str(), 0700), 0);
  }
  // Writes <runs>/<name> as `cordon run` would (root's, 0600).
  void Plant(const std::string& name, const nlohmann::json& record) {
    const std::string path = runs_ + "/" + name;
    std::ofstream(path) << record.dump() << "\n";
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  }
  static nlohmann::json Record(const std::string& id, pid_t pid, std::uint64_t start) {
    return {{"job_id", id}, {"pid", pid}, {"pid_start", start}, {"uid", 0}};
  }
  bool Exists(const std::string& name) const { return std::filesystem::exists(std::filesystem::symlink_status(runs_ + "/" + name)); }

  // A `cordon run` that died: a real child, its start time read while it ran, killed and reaped.
  std::pair<pid_t, std::uint64_t> DeadProcess() {
    SpawnOptions options;
    options.argv = {"/bin/sleep", "30"};
    auto child = Spawn(options);
    EXPECT_TRUE(child) << (child ? "" : child.error().message);
    if (!child) return {0, 0};
    const std::uint64_t start = ProcessStartTime(child->pid);
    EXPECT_NE(start, 0u);
    EXPECT_TRUE(PidfdSignal(child->pidfd.get(), SIGKILL));
    EXPECT_TRUE(WaitChild(child->pid));
    EXPECT_EQ(ProcessStartTime(child->pid), 0u) << "reaped: no such process any more";
    return {child->pid, start};
  }

  cordon::testing::TempDir tmp_{"run-sweep"};
  std::string runs_;
};

TEST_F(RunSweepTest, RemovesTheRecordOfADeadRunAndKeepsTheLiveOnes) {
  const auto [dead, dead_start] = DeadProcess();
  ASSERT_NE(dead, 0);
  Plant("dead-1.json", Record("dead-1", dead, dead_start));
  Plant("mine-1.json", Record("mine-1", dead, dead_start));  // the caller's own id: its business
  Plant("live-1.json", Record("live-1", ::getpid(), ProcessStartTime(::getpid())));
  // A record whose pid now runs another process (this one): its start time differs. Stale.
  Plant("reused-1.json", Record("reused-1", ::getpid(), ProcessStartTime(::getpid()) + 1));
  auto sweep = SweepStaleRuns(tmp_.path(), "mine-1");
  ASSERT_TRUE(sweep) << sweep.error().message;
  ASSERT_EQ(sweep->removed.size(), 2u);
  EXPECT_FALSE(Exists("dead-1.json"));
  EXPECT_FALSE(Exists("reused-1.json"));
  EXPECT_TRUE(Exists("mine-1.json"));
  EXPECT_TRUE(Exists("live-1.json"));
  EXPECT_TRUE(sweep->untrusted.empty());
  // Nothing left to do the second time.
  auto again = SweepStaleRuns(tmp_.path());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->removed.size(), 1u) << "mine-1, no longer skipped";
  EXPECT_TRUE(Exists("live-1.json"));
}

TEST_F(RunSweepTest, AFileTheReaderRefusesIsReportedNeverRemoved) {
  const auto [dead, start] = DeadProcess();
  ASSERT_NE(dead, 0);
  nlohmann::json extra = Record("extra-1", dead, start);
  extra["cmd"] = "x";
  Plant("extra-1.json", extra);                            // an extra member
  Plant("other-1.json", Record("other-2", dead, start));  // names another job
  Plant("open-1.json", Record("open-1", dead, start));
  ASSERT_EQ(::chmod((runs_ + "/open-1.json").c_str(), 0644), 0);  // others may read it
  Plant("target.json", Record("target", dead, start));
  ASSERT_EQ(::rename((runs_ + "/target.json").c_str(), (tmp_.path() + "/target.json").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_.path() + "/target.json").c_str(), (runs_ + "/link-1.json").c_str()), 0);
  Plant("notes.txt", Record("notes", dead, start));       // not a record's name
  Plant(".inflight-1.4242.tmp", Record("inflight-1", dead, start));  // a registration in flight
  auto sweep = SweepStaleRuns(tmp_.path());
  ASSERT_TRUE(sweep) << sweep.error().message;
  EXPECT_TRUE(sweep->removed.empty());
  std::string all;
  for (const Error& e : sweep->untrusted) all += e.message + "\n";
  EXPECT_EQ(sweep->untrusted.size(), 5u) << all;
  for (const char* want : {"extra-1.json: not an object of exactly job_id, pid, pid_start, uid",
                           "other-1.json: it names job 'other-2'", "open-1.json: not root's with mode 0600",
                           "link-1.json: a symbolic link", "notes.txt: not a run record's name"}) {
    EXPECT_NE(all.find(want), std::string::npos) << want << " missing from:\n" << all;
  }
  for (const char* kept : {"extra-1.json", "other-1.json", "open-1.json", "link-1.json", "notes.txt", ".inflight-1.4242.tmp"}) {
    EXPECT_TRUE(Exists(kept)) << kept;
  }
  EXPECT_TRUE(std::filesystem::exists(tmp_.path() + "/target.json")) << "a link's target is never touched";
}

TEST_F(RunSweepTest, AnUntrustedDirectoryIsAnErrorAndNoDirectoryNothingToDo) {
  ASSERT_EQ(::chmod(runs_.c_str(), 0733), 0);
  auto refused = SweepStaleRuns(tmp_.path());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("mode 0700"), std::string::npos) << refused.error().message;
  ASSERT_EQ(::rmdir(runs_.c_str()), 0);
  auto none = SweepStaleRuns(tmp_.path());
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->removed.empty() && none->untrusted.empty());
}

}  // namespace
}  // namespace cordon::cli
