// cordond's Prometheus metrics as a text file for node_exporter's textfile collector
// (--collector.textfile.directory; the file must end in .prom). docs/DAEMON.md, "Operator
// signals", lists every metric. The daemon owns one Metrics object, tells it what happens, and
// writes the file after each change (rate-limited by the caller) and on a timer (the checkpoint
// age moves with time). The write is atomic: a temp file in the same directory, fsync, rename —
// the collector never reads half a file.
//
//   cordon_jobs{state}                            gauge   jobs known, by state (queued, running, ...)
//   cordon_jobs_finished_total{outcome}           counter final jobs by outcome
//   cordon_queue_length{uid}                      gauge   queued jobs per submitting uid
//   cordon_job_duration_seconds                   histogram start to final state
//   cordon_stage_in_duration_seconds              histogram decrypting inputs into the sandbox
//   cordon_stage_out_duration_seconds             histogram sealing outputs
//   cordon_seccomp_violations_total               counter denied syscalls attempted by trainers
//   cordon_audit_entries_total                    counter entries the log holds
//   cordon_audit_last_checkpoint_age_seconds      gauge   now - the last signed checkpoint
//   cordon_degraded                               gauge   1 while the audit log cannot record
// Counters start from what the daemon reloads at start-up (SetFinishedCounts); histograms and
// the violation counter start at 0 with each daemon (Prometheus treats that as a reset).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"

namespace cordon::daemon {

class Histogram final {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
  void Observe(double value);
  // Text exposition lines for metric `name` (buckets cumulative, then _sum and _count).
  [[nodiscard]] std::string Render(std::string_view name) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last = +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

class Metrics final {
 public:
  Metrics();

  // Gauges: the daemon's current view, replaced as a whole.
  void SetJobStates(std::map<std::string, std::uint64_t> jobs_by_state);
  void SetQueueLengths(std::map<uid_t, std::uint64_t> queued_by_uid);
  void SetDegraded(bool degraded);
  // Counters reloaded at start-up from the job store (final jobs by outcome).
  void SetFinishedCounts(std::map<std::string, std::uint64_t> finished_by_outcome);

  // A job reached its final state. Durations in seconds; negative = unknown (not observed).
  void JobFinished(std::string_view outcome, double job_seconds, double stage_in_seconds, double stage_out_seconds,
                   std::uint64_t seccomp_violations);
  void SetAuditEntries(std::uint64_t total);
  void SetLastCheckpoint(double unix_seconds);

  // The whole file's text at `now_unix` (seconds since the epoch).
  [[nodiscard]] std::string Render(double now_unix) const;
  // Atomically replaces `path` (mode 0644) with Render(now_unix).
  [[nodiscard]] Status WriteFile(const std::string& path, double now_unix) const;

 private:
  std::map<std::string, std::uint64_t> states_, finished_;
  std::map<uid_t, std::uint64_t> queued_;
  Histogram job_, stage_in_, stage_out_;
  std::uint64_t violations_ = 0, audit_entries_ = 0;
  std::optional<double> last_checkpoint_;
  bool degraded_ = false;
};

}  // namespace cordon::daemon
