// Where `cordon halt` finds a `cordon run` that cordond does not know: one started by hand
// (docs/INCIDENT-RESPONSE.md). While a root `cordon run` runs, <state_dir>/runs/<job id>.json
// names it:
//   {"job_id": ID, "pid": PID, "pid_start": TICKS, "uid": UID}
// (uid: who the job runs for). The record is a new thing root trusts, so:
//   - the directory is root's and 0700 (checked on every use, never through a symbolic link);
//   - a record is written to a temp file (O_EXCL, O_NOFOLLOW, 0600) and renamed into place
//     with RENAME_NOREPLACE: a reader never sees half a record, and none is ever replaced
//     except a stale one;
//   - it is read back strictly: a regular root-owned file of one link, mode 0600 or tighter,
//     at most 4 KiB, exactly those four members with their types, its job id a job id
//     (protocol::IsJobId) and the one its file is named after;
//   - it names a process by pid AND start time: a record a crashed run left behind, whose pid
//     now belongs to another process, never matches, so that process is never signalled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/unique_fd.h"

namespace cordon::cli {

struct RunRecord {
  std::string job_id;
  pid_t pid = 0;
  std::uint64_t pid_start = 0;
  uid_t uid = 0;
};

// This process's record, removed when destroyed (if the file there is still the one written).
class RunRegistration final {
 public:
  RunRegistration(UniqueFd dir, std::string name, dev_t dev, ino_t ino)
      : dir_(std::move(dir)), name_(std::move(name)), dev_(dev), ino_(ino) {}
  RunRegistration(RunRegistration&&) = default;
  RunRegistration& operator=(RunRegistration&&) = delete;
  RunRegistration(const RunRegistration&) = delete;
  ~RunRegistration();

 private:
  UniqueFd dir_;
  std::string name_;
  dev_t dev_;
  ino_t ino_;
};

// Registers the calling process as the runner of `job_id`, running for `uid`. A stale record
// of the same id is replaced; a live one is an error (kAlreadyExists).
[[nodiscard]] Result<RunRegistration> RegisterRun(const std::string& state_dir, const std::string& job_id, uid_t uid);

// The record of `job_id`: kNotFound when there is none; kInvalidArgument for a bad job id;
// kIntegrity (naming the file and the rule broken) for a record or directory that breaks the
// rules above.
[[nodiscard]] Result<RunRecord> FindRun(const std::string& state_dir, const std::string& job_id);

// A pidfd of the process the record names while it still runs; an invalid fd once it has
// ended (its pid free or another process's). Signal and wait through it, never the bare pid.
[[nodiscard]] UniqueFd OpenRunProcess(const RunRecord& record);

// Removes the record of `job_id` if it is stale (its process ended). True when removed.
bool RemoveStaleRun(const std::string& state_dir, const RunRecord& record);

// What SweepStaleRuns did: the stale records it removed, and the files under runs/ that break
// the rules above (each error names the file and the rule), left where they are.
struct RunSweep {
  std::vector<RunRecord> removed;
  std::vector<Error> untrusted;
};

// Removes every record whose process has ended (a `cordon run` killed with SIGKILL leaves its
// record behind), read with the strict reader above; a record whose pid now belongs to another
// process is stale too (its start time differs). A file the reader refuses is never removed:
// it is reported in `untrusted`. `skip` (a job id, or "") is left alone: the caller handles
// that record itself. Registration temp files (".ID.PID.tmp") are not records and are left.
// No runs/ directory: nothing to do. Called when `cordon run` registers and when `cordon halt`
// looks a job up.
[[nodiscard]] Result<RunSweep> SweepStaleRuns(const std::string& state_dir, const std::string& skip = "");
// Tells stderr what a sweep removed and what it left ("cordon COMMAND: ...").
void PrintSweep(const std::string& command, const Result<RunSweep>& sweep);

}  // namespace cordon::cli
