// What the runner does inside the sandbox (as the sandbox init, root in the
// job's namespaces, after pivot_root); it reports to the runner over the
// control socket (channel.h). Private to the runner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "channel.h"
#include "cordon/error.h"
#include "cordon/key_ref.h"
#include "cordon/datasets/expectations.h"
#include "cordon/sealed/sealed.h"

namespace cordon::runner::internal {

// The trainer's metrics file inside the sandbox ($CORDON_METRICS).
inline constexpr const char* kMetricsPath = "/tmp/cordon-metrics.jsonl";
inline constexpr int kMaxOutputDepth = 16;
// Entries of /out examined at most (files, directories, anything); the rest is not looked at.
inline constexpr std::size_t kMaxOutputEntries = 200'000;
// Refused entries whose path goes into the sealed index; past that they are only counted.
inline constexpr std::size_t kMaxIndexedRefusals = 10'000;
// Refusals reported one by one (the runner audits each); the rest only in the summary.
inline constexpr std::size_t kMaxRefusalReports = 5;
// The host names Cordon gives what stage-out writes into the job directory.
inline constexpr const char* kIndexFile = "index.sealed";
inline constexpr const char* kIndexDataset = "index";
// While the job runs: the index of the live outputs sealed so far, replaced after each one (a
// host crash leaves it beside them); removed once index.sealed, which holds them too, is durable.
inline constexpr const char* kLiveIndexFile = "index.live.sealed";
inline constexpr const char* kLiveIndexDataset = "index-live";
// Live seals per job at most (each is audited and rewrites the live index); past that, files
// under the live prefixes wait for the final stage-out like any other.
inline constexpr std::size_t kMaxLiveSeals = 1000;
// "out-000042": the n-th output's dataset name; its file is that plus ".sealed".
[[nodiscard]] std::string OutputDataset(std::size_t n);

struct InputPlan {
  std::string name;  // /data/<name>
  int fd = -1;       // the sealed file, opened by the runner
  sealed::Header header;
  std::vector<std::string> columns;
  std::optional<specs::Expectations> expect;           // `expect:` checks, run while decrypting
  std::optional<orchestrator::Summaries> baseline;     // the last known good version's (max_drift)
};

// Decrypts `input` into out_fd (projected when it has columns) and runs its
// `expect:` checks in the same pass; the result goes to ctl_fd as
// kExpectations. A failed check is an error (kInvalidData) naming the checks.
[[nodiscard]] Status DecryptWithExpectations(const InputPlan& input, const SecretBytes& dek, int out_fd, int ctl_fd);

struct StagePlan {
  std::vector<InputPlan> inputs;
  int keys_fd = -1;     // read end of the key pipe: one 32-byte DEK per input, in order
  int ctl_fd = -1;      // the init's end of the control socket
  int metrics_fd = -1;  // write end of the live-metrics pipe (the relay writes it)
  uid_t uid = 65534;
  gid_t gid = 65534;
  KeyRef output_key;
  std::string job_id;
  std::uint64_t max_files = 10000;       // outputs sealed at most; the rest is refused (file_cap)
  std::uint64_t max_bytes = 0;           // plaintext bytes sealed at most, all outputs together
  std::chrono::milliseconds stage_deadline{10 * 60 * 1000};  // stage-out's own wall clock
  std::vector<std::string> live;         // spec.output.live: /out-relative prefixes ending in '/'
};

// What has been sealed for the job so far, live and final together: the caps count both, and
// the final stage-out does not seal again a file whose live version is unchanged. Lives in the
// sandbox init (a copy made by the clone), touched only by its one thread.
struct SealLedger {
  std::size_t sealed_count = 0;
  std::uint64_t sealed_bytes = 0;
  // The index's plaintext, built as text (a JSON tree of 30,000 entries costs ~5x the memory,
  // charged to the job's cgroup).
  std::string index = "[";
  std::size_t index_entries = 0;
  struct Version {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0, ctime_ns = 0;
    std::uint32_t version = 0;
  };
  std::map<std::string, Version> live;  // /out-relative path -> its last live version
  std::size_t live_seals = 0;
};

// Decrypts every input into /data, projected; starts the metrics relay.
// A failure is also reported on ctl_fd as kInputError with its Errc.
[[nodiscard]] Status StageIn(const StagePlan& plan);

// Seals every regular file under /out (a depth-first walk, names sorted bytewise
// in each directory) into output_dir_fd as out-000001.sealed, out-000002.sealed,
// ... (dataset out-NNNNNN, job plan.job_id), within the plan's caps and deadline,
// then seals the index (a JSON array of {file, path, size, sha256} and
// {path, refused}) as index.sealed under the same key. Only Cordon-made names,
// counts and hashes go to ctl_fd; a relative path under /out exists on the host
// only inside index.sealed. Errors name Cordon-made files only.
// A file already sealed live and unchanged since (same inode, size, mtime and ctime) is not
// sealed again: the index's entry for that path is its last live version.
[[nodiscard]] Status StageOut(const StagePlan& plan, SealLedger& ledger, int output_dir_fd);

// While the trainer runs: seals /out/<path> (under a plan.live prefix) if it is a regular file
// with one link, changed since its last live version and within the caps, as the next
// out-NNNNNN.sealed (durable before it is reported), replaces index.live.sealed, and reports
// kLiveOutput. Anything else is left to the final stage-out, which refuses or seals it.
[[nodiscard]] Status SealLive(const StagePlan& plan, SealLedger& ledger, int output_dir_fd, std::string_view path);


}  // namespace cordon::runner::internal
