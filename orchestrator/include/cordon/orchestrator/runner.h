// The job runner: one training job end to end, in the foreground — what
// `cordon run SPEC` does and what the daemon runs for each job.
//
//   1. the spec (already validated by the caller) and its sha256 are recorded;
//   2. every input is opened once; a pinned one is hashed through that fd and
//      compared with the pin before any key is touched, an unpinned one is
//      hashed for the lineage record by a child process while the job runs;
//      the fd is what the sandbox reads;
//   3. the inputs' data keys are unwrapped through the KMS (context: the
//      file's dataset; the job id is recorded beside it in the audit log);
//   4. the sandbox starts (cordon::sandbox, in a supervisor child process);
//      the data keys reach its init over a pipe and nowhere else;
//   5. inside, before the trainer: each input is decrypted into /data/<name>
//      on the noswap tmpfs, projected to the spec's columns while streaming;
//   6. the trainer runs under the spec's limits; $CORDON_METRICS is relayed live;
//   7. after it exits, every regular file in /out is sealed into
//      <output.path>/<job id>/<relative path>.sealed — each under a fresh data
//      key that the runner wraps with the spec's output key on the init's
//      request (the KMS never enters the sandbox); links, FIFOs, devices and
//      oversized files are refused and recorded. The trainer's stdout/stderr
//      are sealed as trainer.log.sealed; manifest.json is written beside them;
//   8. the tmpfs dies with the sandbox; keys are cleansed; job.finished is
//      appended with the typed outcome.
// Every step appends an audit entry before it acts and one with its outcome.
#pragma once

#include <cstdint>
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"
#include "cordon/orchestrator/config.h"
#include "cordon/specs/spec.h"

namespace cordon::runner {

enum class JobOutcome {
  kSucceeded,         // the trainer exited 0 and every output was sealed
  kTrainerFailed,     // the trainer exited non-zero or died of a signal
  kTimeout,           // the wall-clock timeout killed the job
  kMemoryLimit,       // the memory limit killed the trainer
  kSandboxViolation,  // the trainer tried a denied syscall
  kInputRejected,     // an input failed its pin, authentication, decryption or projection
  kSetupError,        // Cordon could not run the job (KMS, sandbox, output directory, ...)
  kCancelled,         // stopped from outside (SIGINT/SIGTERM, `cordon cancel`)
};
[[nodiscard]] const char* JobOutcomeName(JobOutcome outcome);
// `cordon run`'s exit status for each outcome (docs/CLI.md): 0, then 10..17.
[[nodiscard]] int ExitStatusFor(JobOutcome outcome);

struct OutputFile {
  std::string name;    // relative path under /out
  std::string path;    // the sealed file on the host
  std::uint64_t size = 0;  // plaintext bytes
  std::string sha256;  // "sha256:<hex>" of the sealed file
};

struct JobReport {
  std::string job_id;
  JobOutcome outcome = JobOutcome::kSetupError;
  std::string reason;
  int trainer_exit_code = -1;
  int trainer_signal = 0;
  std::vector<OutputFile> outputs;  // includes trainer.log
  std::string output_dir;           // <output.path>/<job id>
  std::string manifest_path;        // empty when no manifest could be written
  nlohmann::json manifest;          // what manifest.json holds
};

struct RunOptions {
  std::string spec_path;      // recorded in the audit log
  std::string spec_sha256;    // "sha256:<hex>" of the spec file's bytes
  std::string job_id;         // empty: generated (<name>-<UTC time>-<4 hex>)
  // Who the job runs for. Unset: the calling process's uid. The daemon sets the
  // submitter's uid (from SO_PEERCRED or the spool file's owner).
  std::optional<uid_t> submitter_uid;
  bool show_logs = false;     // also echo the trainer's stdout/stderr to ours
  // Called with each sanitised metrics line while the trainer runs.
  std::function<void(const nlohmann::json& metrics)> on_metrics;
  // Called once the job id is known and the job is accepted.
  std::function<void(const std::string& job_id)> on_started;
};

// Runs `job`. The returned error is for failures before a job id exists (the
// audit log cannot be opened); every later failure is a JobReport outcome.
// Call only from a single-threaded process (the sandbox forks with clone).
[[nodiscard]] Result<JobReport> RunJob(const orchestrator::Config& config,
                                       const specs::TrainingJob& job, const RunOptions& options);

// Asks a running RunJob to stop (async-signal-safe): the job ends as kCancelled.
void RequestCancel();

}  // namespace cordon::runner
