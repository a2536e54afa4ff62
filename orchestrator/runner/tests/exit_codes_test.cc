// The one table of exit statuses (cordon/exit_codes.h) against its contract,
// docs/CLI.md: no value shared within a group, the documented numbers, and `cordon run`'s
// outcome table read from docs/CLI.md itself.
#include "cordon/exit_codes.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <string>

#include "cordon/runner/runner.h"

namespace cordon {
namespace {

using runner::JobOutcome;

TEST(ExitCodesTest, NoDuplicateWithinAGroup) {
  EXPECT_TRUE(ExitStatusesDistinct(kGeneralExitStatuses));
  EXPECT_TRUE(ExitStatusesDistinct(kSealedExitStatuses));
  EXPECT_TRUE(ExitStatusesDistinct(kRunExitStatuses));
  EXPECT_TRUE(ExitStatusesDistinct(kWaitExitStatuses));
  // The check itself sees a duplicate.
  EXPECT_FALSE(ExitStatusesDistinct(std::array{kExitOk, kExitChunkAuth, kExitCancelled}));
}

TEST(ExitCodesTest, DocumentedNumbers) {
  // docs/CLI.md "Exit status" and the cordond clients' paragraph.
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitFailure, 1);
  EXPECT_EQ(kExitInvalid, 2);
  EXPECT_EQ(kExitDenied, 3);
  EXPECT_EQ(kExitNotFound, 4);
  EXPECT_EQ(kExitUnavailable, 5);
  // docs/SEALED-FORMAT.md, via docs/CLI.md: 10..19.
  EXPECT_EQ(kExitNotSealed, 10);
  EXPECT_EQ(kExitChunkAuth, 16);
  EXPECT_EQ(kExitKmsUnavailable, 19);
  // `cordon wait`: 16 cancelled, 17 interrupted.
  EXPECT_EQ(kExitCancelled, 16);
  EXPECT_EQ(kExitInterrupted, 17);
  // `cordon run` and `cordon wait`: 18 halted (after `wait`'s 17).
  EXPECT_EQ(kExitHalted, 18);
}

// `cordon run`'s table in docs/CLI.md ("| 10 | trainer_failed |") names every outcome with the
// status runner::ExitStatusFor gives it.
TEST(ExitCodesTest, RunOutcomesMatchDocsCliTable) {
  std::ifstream docs(CORDON_SOURCE_DIR "/docs/CLI.md");
  ASSERT_TRUE(docs) << "cannot read docs/CLI.md";
  const std::regex row(R"(^\| (\d+) \| ([a-z_]+) \|$)");
  std::map<std::string, int> documented;
  for (std::string line; std::getline(docs, line);) {
    if (std::smatch m; std::regex_match(line, m, row)) documented.emplace(m[2].str(), std::stoi(m[1].str()));
  }
  for (JobOutcome outcome : {JobOutcome::kSucceeded, JobOutcome::kTrainerFailed, JobOutcome::kTimeout,
                             JobOutcome::kMemoryLimit, JobOutcome::kSandboxViolation, JobOutcome::kInputRejected,
                             JobOutcome::kSetupError, JobOutcome::kCancelled, JobOutcome::kHalted}) {
    const std::string name = JobOutcomeName(outcome);
    ASSERT_TRUE(documented.contains(name)) << name << " missing from docs/CLI.md's `cordon run` table";
    EXPECT_EQ(runner::ExitStatusFor(outcome), documented[name]) << name;
    EXPECT_NE(std::ranges::find(kRunExitStatuses, runner::ExitStatusFor(outcome)), kRunExitStatuses.end()) << name;
  }
}

}  // namespace
}  // namespace cordon
