// What the runner does inside the sandbox (as the sandbox init, root in the
// job's namespaces, after pivot_root), and the messages the init and the
// runner exchange over a SOCK_SEQPACKET pair. Private to the runner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/key_ref.h"
#include "cordon/orchestrator/expectations.h"
#include "cordon/orchestrator/sealed.h"

namespace cordon::runner::internal {

// The trainer's metrics file inside the sandbox ($CORDON_METRICS).
inline constexpr const char* kMetricsPath = "/tmp/cordon-metrics.jsonl";
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024;
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
// "out-000042": the n-th output's dataset name; its file is that plus ".sealed".
[[nodiscard]] std::string OutputDataset(std::size_t n);

// Message types on the control socket (first byte of each datagram).
enum class Msg : char {
  kWrapRequest = 'W',   // init -> runner: u8 len, dataset, u8 len, job, 32-byte DEK
  kWrapResponse = 'K',  // runner -> init: u32 BE version, wrapped blob
  kWrapError = 'E',     // runner -> init: message
  kOutput = 'O',        // init -> runner: JSON {file, size, sha256} (Cordon-made names only)
  kRefused = 'R',       // init -> runner: JSON {n, kind} (the first kMaxRefusalReports only)
  kIndex = 'X',         // init -> runner: JSON {file, size, sha256, entries} of the sealed index
  kStageSummary = 'S',  // init -> runner: JSON {sealed, bytes, refused: {kind: count}, deadline_hit}
  kMetrics = 'M',       // init -> runner: the trainer's last metrics line
  kInputError = 'I',    // init -> runner: JSON {input, code, message}
  kExpectations = 'V',  // init -> runner: JSON {input, result: ExpectationResult} (aggregates only)
};

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
[[nodiscard]] Status StageOut(const StagePlan& plan, int output_dir_fd);

// Sends one datagram; the runner side uses it too.
[[nodiscard]] Status SendMessage(int fd, Msg type, std::string_view payload);


}  // namespace cordon::runner::internal
