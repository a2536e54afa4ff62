// How a sandbox run becomes a job outcome (classify.h): one case per outcome.
#include "classify.h"

#include <gtest/gtest.h>

namespace cordon::runner::internal {
namespace {

using sandbox::Outcome;

sandbox::RunResult Finished(Outcome outcome, int exit_code = 0) {
  sandbox::RunResult r;
  r.outcome = outcome;
  r.exit_code = exit_code;
  return r;
}

Verdict Classify(const sandbox::RunResult& r, const RunContext& context = {}) {
  specs::Resources resources;
  resources.memory_bytes = 1ull << 30;
  resources.scratch_bytes = 128ull << 20;
  resources.timeout = std::chrono::minutes(5);
  auto verdict = ClassifyRun(r, resources, context);
  return verdict ? *verdict : Verdict{JobOutcome::kSucceeded, "(succeeded)"};
}

TEST(ClassifyRunTest, AClean0ExitSucceeds) {
  EXPECT_FALSE(ClassifyRun(Finished(Outcome::kOk), {}, {}));
}

TEST(ClassifyRunTest, ANonZeroExitOrASignalIsTheTrainersFailure) {
  Verdict v = Classify(Finished(Outcome::kOk, 3));
  EXPECT_EQ(v.outcome, JobOutcome::kTrainerFailed);
  EXPECT_EQ(v.reason, "the trainer exited with status 3");
  sandbox::RunResult signaled = Finished(Outcome::kSignaled);
  signaled.signal = 11;
  EXPECT_EQ(Classify(signaled).reason, "the trainer died of signal 11");
}

TEST(ClassifyRunTest, AFullScratchIsNamedInTheFailure) {
  sandbox::RunResult r = Finished(Outcome::kOk, 1);
  r.scratch_full = true;
  r.scratch_size_bytes = r.scratch_peak_bytes = 128ull << 20;
  r.scratch_out_bytes = 100ull << 20;
  const Verdict v = Classify(r);
  EXPECT_EQ(v.outcome, JobOutcome::kTrainerFailed);
  EXPECT_TRUE(v.reason.starts_with("scratch full: 128 MiB of 128 MiB used (/out 100 MiB, /data 0 B, /tmp 0 B); "))
      << v.reason;
}

TEST(ClassifyRunTest, TheMemoryLimitWinsOverTheExitItCaused) {
  for (Outcome outcome : {Outcome::kSignaled, Outcome::kOk}) {
    sandbox::RunResult r = Finished(outcome, outcome == Outcome::kOk ? 137 : 0);
    r.memory_limit_hit = true;
    r.memory_limit_bytes = (1ull << 30) + (128ull << 20);
    r.max_rss_bytes = 900ull << 20;
    const Verdict v = Classify(r);
    EXPECT_EQ(v.outcome, JobOutcome::kMemoryLimit);
    EXPECT_TRUE(v.reason.starts_with("memory limit 1.1 GiB (memory 1Gi + scratch 128Mi) reached: trainer RSS peak 900 MiB"))
        << v.reason;
  }
  sandbox::RunResult clean = Finished(Outcome::kOk, 0);
  clean.memory_limit_hit = true;  // a child was killed but the trainer exited 0: not a failure
  EXPECT_FALSE(ClassifyRun(clean, {}, {}));
}

TEST(ClassifyRunTest, TimeoutAndViolationSayWhich) {
  Verdict v = Classify(Finished(Outcome::kTimeout));
  EXPECT_EQ(v.outcome, JobOutcome::kTimeout);
  EXPECT_EQ(v.reason, "the job ran past its timeout of 5m");
  sandbox::RunResult violation = Finished(Outcome::kViolation);
  violation.reason = "ptrace";
  v = Classify(violation);
  EXPECT_EQ(v.outcome, JobOutcome::kSandboxViolation);
  EXPECT_EQ(v.reason, "the trainer broke the sandbox policy: ptrace");
}

TEST(ClassifyRunTest, AnExternalKillIsACancelABackstopOrUnexplained) {
  const sandbox::RunResult killed = Finished(Outcome::kExternalKill);
  EXPECT_EQ(Classify(killed).outcome, JobOutcome::kSetupError);
  EXPECT_EQ(Classify(killed).reason, "the sandbox was killed from outside");
  RunContext cancelled;
  cancelled.cancelled = true;
  EXPECT_EQ(Classify(killed, cancelled).outcome, JobOutcome::kCancelled);
  RunContext overran;
  overran.cancelled = true;
  overran.overran = true;
  overran.stage_out_deadline = std::chrono::minutes(10);
  const Verdict v = Classify(killed, overran);
  EXPECT_EQ(v.outcome, JobOutcome::kSetupError);
  EXPECT_EQ(v.reason, "the sandbox outlived the timeout plus the stage-out deadline (10m) and was killed");
}

TEST(ClassifyRunTest, AHaltOverridesEverything) {
  RunContext halted;
  halted.halted = true;
  for (Outcome outcome : {Outcome::kOk, Outcome::kExternalKill, Outcome::kViolation}) {
    EXPECT_EQ(Classify(Finished(outcome), halted).outcome, JobOutcome::kHalted);
  }
}

TEST(ClassifyRunTest, SetupErrorsBlameTheImageTheInputOrTheStep) {
  sandbox::RunResult exec = Finished(Outcome::kSetupError);
  exec.failed_step = "exec-trainer";
  exec.reason = "exec-trainer: /job/bin/train: no such file";
  Verdict v = Classify(exec);
  EXPECT_EQ(v.outcome, JobOutcome::kTrainerFailed);
  EXPECT_EQ(v.reason, "/job/bin/train: no such file");

  sandbox::RunResult stage_in = Finished(Outcome::kSetupError);
  stage_in.failed_step = "stage-in";
  stage_in.reason = "input 'train' failed";
  const nlohmann::json input_error = {{"input", "train"}, {"code", "tampered"}, {"message", "chunk 3 fails"}};
  RunContext with_input;
  with_input.input_error = &input_error;
  v = Classify(stage_in, with_input);
  EXPECT_EQ(v.outcome, JobOutcome::kInputRejected);
  EXPECT_EQ(v.reason, "input 'train': chunk 3 fails");

  v = Classify(stage_in);
  EXPECT_EQ(v.outcome, JobOutcome::kSetupError);
  EXPECT_EQ(v.reason, "sandbox step stage-in: input 'train' failed");
}

}  // namespace
}  // namespace cordon::runner::internal
