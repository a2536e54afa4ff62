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
//   7. after it exits, every regular file in /out is sealed into the job
//      directory <output.path>/<job id>/ under a Cordon-made name
//      (out-000001.sealed, ... in a depth-first walk, names sorted), each under
//      a fresh data key that the runner wraps with the spec's output key on the
//      init's request (the KMS never enters the sandbox). The relative paths
//      exist on the host only inside index.sealed (same key). Links, FIFOs,
//      devices, files past output.max_files / output.max_bytes or past the
//      stage-out deadline are refused and counted by kind. The trainer's
//      stdout/stderr are sealed as trainer.log.sealed; manifest.json is written
//      beside them. No name the trainer chose reaches a host file name, the
//      manifest, the audit log or the report;
//   8. the tmpfs dies with the sandbox; keys are cleansed; job.finished is
//      appended with the typed outcome.
// The job directory is created once (mkdirat in the output directory's fd) and
// used only through its fd afterwards; the image is bound from its fd.
// Every step appends an audit entry before it acts and one with its outcome.
#pragma once

#include <cstdint>
#include <sys/types.h>

#include <functional>
#include <map>
#include <utility>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"
#include "cordon/config/config.h"
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
  kHalted,            // stopped by an admin's `cordon halt` (SIGUSR1): nothing it produced was sealed
};
// Every outcome, in the enum's order (for --help and the checks).
inline constexpr JobOutcome kJobOutcomes[] = {
    JobOutcome::kSucceeded,        JobOutcome::kTrainerFailed, JobOutcome::kTimeout,
    JobOutcome::kMemoryLimit,      JobOutcome::kSandboxViolation, JobOutcome::kInputRejected,
    JobOutcome::kSetupError,       JobOutcome::kCancelled,     JobOutcome::kHalted};
[[nodiscard]] const char* JobOutcomeName(JobOutcome outcome);
// `cordon run`'s exit status for each outcome (docs/CLI.md): 0, then 10..16 and 18
// (the `cordon run` group of exit_codes.h).
[[nodiscard]] int ExitStatusFor(JobOutcome outcome);

// Something Cordon sealed into the job directory. `file` is Cordon-made
// (out-000001.sealed, index.sealed, trainer.log.sealed).
struct OutputFile {
  std::string file;
  std::string path;        // <output_dir>/<file>, for display
  std::uint64_t size = 0;  // plaintext bytes
  std::string sha256;      // "sha256:<hex>" of the sealed file
};

struct JobReport {
  std::string job_id;
  JobOutcome outcome = JobOutcome::kSetupError;
  std::string reason;
  int trainer_exit_code = -1;
  int trainer_signal = 0;
  std::vector<OutputFile> outputs;      // the trainer's outputs, in index order
  std::optional<OutputFile> trainer_log;
  // metrics.jsonl.sealed: every accepted metrics line, {"t": unix ms, declared members...}
  // (only when the spec declares metrics and the trainer reported some).
  std::optional<OutputFile> metrics_series;
  std::optional<OutputFile> index;      // index.sealed: the outputs' relative paths
  std::string output_dir;               // <output.path>/<job id>
  std::optional<std::pair<dev_t, ino_t>> output_dir_id;  // fstat of the job directory Cordon made
  nlohmann::json refused = nlohmann::json::object();     // refused outputs: kind -> count
  std::uint64_t metrics_dropped = 0;    // metric members dropped (undeclared name or not a number)
  std::string manifest_path;            // empty when no manifest could be written
  nlohmann::json manifest;              // what manifest.json holds
};

struct RunOptions {
  std::string spec_path;      // recorded in the audit log
  std::string spec_sha256;    // "sha256:<hex>" of the spec file's bytes
  std::string job_id;         // empty: generated (<name>-<UTC time>-<4 hex>)
  // Who the job runs for. Unset: the calling process's uid. The daemon sets the
  // submitter's uid (from SO_PEERCRED or the spool file's owner).
  std::optional<uid_t> submitter_uid;
  // cgroup v2: the cgroup the job's cgroup is created in (sandbox::Policy::cgroup_parent);
  // cordond passes its delegated service cgroup. Empty: the sandbox picks.
  std::string cgroup_parent;
  // Fds the caller opened as the submitter (cordond), taken over by RunJob (made
  // close-on-exec, closed when it returns). With one, the matching path in the
  // spec is never looked up:
  //   input_fds: spec input name -> a regular file (O_RDONLY);
  //   output_fd: spec.output.path (O_RDONLY | O_DIRECTORY): the job directory is
  //              mkdirat(output_fd, job id, 0750);
  //   image_fd:  spec.trainer.image (O_RDONLY or O_PATH, O_DIRECTORY): what /job binds.
  std::map<std::string, int> input_fds;
  int output_fd = -1;
  int image_fd = -1;
  bool show_logs = false;     // also echo the trainer's stdout/stderr to ours
  bool logs_to_stderr = false;  // echo both to our stderr (stdout carries JSON only: --json)
  // Called with each sanitised metrics line (declared names only) while the trainer runs.
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
