// How a finished sandbox run becomes the job's outcome: the sandbox's verdict,
// the trainer's exit and what happened around the run (a halt, a cancel, the
// runner's backstop) decide it, and the reason names the limit that was hit.
// Pure, so each case is unit-tested (orchestrator/runner/tests/classify_test.cc).
// Private to the runner.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cordon/runner/runner.h"
#include "cordon/sandbox/sandbox.h"
#include "cordon/specs/spec.h"

namespace cordon::runner::internal {

struct RunContext {
  bool halted = false;     // `cordon halt` (SIGUSR1): the runner killed the sandbox
  bool cancelled = false;  // SIGINT/SIGTERM, `cordon cancel`
  bool overran = false;    // the runner's backstop killed a sandbox that outlived its deadlines
  std::chrono::milliseconds stage_out_deadline{0};
  const nlohmann::json* input_error = nullptr;  // the init's kInputError report {input, code, message}, if any
};

struct Verdict {
  JobOutcome outcome;
  std::string reason;
};

// nullopt: the trainer succeeded (stage-out may still fail the job).
[[nodiscard]] std::optional<Verdict> ClassifyRun(const sandbox::RunResult& r, const specs::Resources& resources,
                                                 const RunContext& context);

}  // namespace cordon::runner::internal
