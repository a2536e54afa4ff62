// Structured journal entries for cordond's log lines about a job (docs/DAEMON.md, "Operator
// signals"). Under systemd, stderr is a journald stream (JOURNAL_STREAM names its device and
// inode); then each job event is sent with sd_journal_send as its own entry with fields an
// operator can filter on:
//   journalctl -u cordond CORDON_JOB_ID=churn-000042-1a2b
//   journalctl -u cordond CORDON_OUTCOME=runner_crashed -o json
// Fields: MESSAGE=, PRIORITY= (6 info, 4 warning, 3 error), SYSLOG_IDENTIFIER=cordond,
// CORDON_JOB_ID=, CORDON_OUTCOME= (only when non-empty), CORDON_STATE= (idem).
// Elsewhere (foreground, tests) or if the journal refuses, the same text goes through spdlog.
// Values are Cordon's own (job ids, outcome and state words): never data, never a string a
// trainer chose.
#pragma once

#include <string>
#include <string_view>

namespace cordon::daemon::journal {

enum class Level { kInfo, kWarning, kError };

struct JobEventFields {
  std::string_view job_id;
  std::string_view outcome;  // e.g. "succeeded", "runner_crashed"; empty: not final yet
  std::string_view state;    // e.g. "queued", "running"; empty: not given
};

// True when `journal_stream` (the JOURNAL_STREAM value, "DEV:INO"; null: unset) names fd.
[[nodiscard]] bool StreamIsJournal(const char* journal_stream, int fd);

// True when this process's stderr is the journal (evaluated once, at the first call).
[[nodiscard]] bool StderrIsJournal();

// One line about a job: a structured journal entry, or a plain spdlog line
// "job ID: MESSAGE (outcome OUTCOME)" when stderr is not the journal.
void JobEvent(const JobEventFields& fields, std::string_view message, Level level = Level::kInfo);

// Shorthand for the common case.
inline void JobEvent(std::string_view job_id, std::string_view outcome, std::string_view message,
                     Level level = Level::kInfo) {
  JobEvent(JobEventFields{job_id, outcome, {}}, message, level);
}

}  // namespace cordon::daemon::journal
