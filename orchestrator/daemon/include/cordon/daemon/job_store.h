// cordond's job store: one directory per job under <state_dir>/jobs/<job id>/
// holding the spec copy the job runs (spec.yaml, 0600) and its state record
// (job.json, 0600). Every state transition rewrites job.json with
// WriteFileAtomic (temp + fsync + rename + fsync of the directory), so after a
// crash a reader finds the old record or the new one, never a torn mix, and
// `cordon status` survives restarts. The record holds references only: ids,
// uids, paths, hashes, outcomes — never data, never keys.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"

namespace cordon::daemon {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kInterrupted, kCancelled, kRejected };
[[nodiscard]] const char* JobStateName(JobState state);
[[nodiscard]] std::optional<JobState> ParseJobState(std::string_view name);
[[nodiscard]] bool IsFinal(JobState state);

struct JobRecord {
  std::string job_id;
  std::uint64_t seq = 0;         // submission order (FIFO)
  std::string name;              // metadata.name ("" when the spec did not parse)
  JobState state = JobState::kQueued;
  std::string outcome;           // runner outcome (succeeded, trainer_failed, ...) once final
  std::string reason;
  uid_t submitter = 0;
  std::string via;               // "socket" or "spool"
  std::string source;            // spool token it was taken from ("" for the socket)
  std::string spec_sha256;
  double submitted_at = 0, started_at = 0, finished_at = 0;  // unix seconds; 0 = not yet
  pid_t pid = 0;                 // the `cordon run` child while running
  std::uint64_t pid_start = 0;   // its start time (/proc/PID/stat field 22), against pid reuse
  int exit_status = -1;          // `cordon run`'s exit status
  std::string output_dir;
  // What the daemon keeps, it keeps: the identity of the job directory the
  // runner created and the sha256 of the trainer log it sealed there. `cordon
  // logs` unseals only a file with that hash in a directory with that identity.
  std::uint64_t output_dir_dev = 0, output_dir_ino = 0;
  std::string trainer_log_file;    // a Cordon-made name inside output_dir
  std::string trainer_log_sha256;  // "sha256:<hex>" of the sealed log
  nlohmann::json outputs = nlohmann::json::array();
  // Once final: what the job used (from the runner's manifest): peak_memory_bytes,
  // memory_limit_bytes, max_rss_bytes and scratch {size_bytes, peak_bytes, final_bytes, full};
  // null before.
  nlohmann::json resources = nullptr;
  // Where the job runs: "local" (a child of cordond) or "slurm" (docs/SCALE-OUT.md).
  std::string executor = "local";
  std::string slurm_job_id;  // "" until sbatch answered
  std::string node;          // the Slurm node it ran on, once known
  bool cancel_requested = false;  // slurm: `cordon cancel` was asked (scancel sent)
  // `cordon halt` was asked (op halt): however the job then ends without a report of its own
  // (killed before its handler, cancelled while pending in Slurm), it ends `halted`.
  bool halt_requested = false;
  // What the job reads, for `cordon halt`'s quarantine: [{name, dataset, sha256 (null until
  // known)}], the datasets the policy approved at start, then what the runner's manifest says.
  nlohmann::json inputs = nlohmann::json::array();

  [[nodiscard]] nlohmann::json ToJson() const;
  [[nodiscard]] static Result<JobRecord> FromJson(const nlohmann::json& j);
};

class JobStore final {
 public:
  // Creates <state_dir>/jobs (0700) if missing and loads every record. A
  // record that does not parse is an error naming it (never silently dropped).
  [[nodiscard]] static Result<JobStore> Open(const std::string& state_dir);

  // Gives `record` its seq and job id (<name>-<seq>-<4 hex>) without writing
  // anything, so the decision can be audited before it is recorded.
  void AssignId(JobRecord& record);
  // Assigns seq and id unless AssignId did, writes spec.yaml then job.json.
  [[nodiscard]] Result<JobRecord*> Create(JobRecord record, std::string_view spec_text);
  [[nodiscard]] Status Save(const JobRecord& record);
  [[nodiscard]] JobRecord* Find(std::string_view job_id);
  [[nodiscard]] std::vector<JobRecord*> All();  // by seq
  [[nodiscard]] std::string JobDir(std::string_view job_id) const;
  [[nodiscard]] std::string SpecPath(std::string_view job_id) const { return JobDir(job_id) + "/spec.yaml"; }

 private:
  std::string dir_;
  std::map<std::uint64_t, JobRecord> jobs_;
  std::map<std::string, std::uint64_t, std::less<>> by_id_;
  std::uint64_t next_seq_ = 1;
};

[[nodiscard]] double NowSeconds();

}  // namespace cordon::daemon
