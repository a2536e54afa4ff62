// What the runner does inside the sandbox (as the sandbox init, root in the
// job's namespaces, after pivot_root), and the messages the init and the
// runner exchange over a SOCK_SEQPACKET pair. Private to the runner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/key_ref.h"
#include "cordon/orchestrator/sealed.h"

namespace cordon::runner::internal {

// The trainer's metrics file inside the sandbox ($CORDON_METRICS).
inline constexpr const char* kMetricsPath = "/tmp/cordon-metrics.jsonl";
inline constexpr std::size_t kMaxMessageBytes = 64 * 1024;
inline constexpr std::size_t kMaxOutputs = 10000;
inline constexpr int kMaxOutputDepth = 16;

// Message types on the control socket (first byte of each datagram).
enum class Msg : char {
  kWrapRequest = 'W',   // init -> runner: u8 len, dataset, u8 len, job, 32-byte DEK
  kWrapResponse = 'K',  // runner -> init: u32 BE version, wrapped blob
  kWrapError = 'E',     // runner -> init: message
  kOutput = 'O',        // init -> runner: JSON {name, path, size, sha256}
  kRefused = 'R',       // init -> runner: JSON {name, reason}
  kMetrics = 'M',       // init -> runner: the trainer's last metrics line
  kInputError = 'I',    // init -> runner: JSON {input, code, message}
};

struct InputPlan {
  std::string name;  // /data/<name>
  int fd = -1;       // the sealed file, opened by the runner
  sealed::Header header;
  std::vector<std::string> columns;
};

struct StagePlan {
  std::vector<InputPlan> inputs;
  int keys_fd = -1;     // read end of the key pipe: one 32-byte DEK per input, in order
  int ctl_fd = -1;      // the init's end of the control socket
  int metrics_fd = -1;  // write end of the live-metrics pipe (the relay writes it)
  uid_t uid = 65534;
  gid_t gid = 65534;
  KeyRef output_key;
  std::string job_id;
  std::uint64_t max_output_bytes = 0;  // larger files in /out are refused (sparse or impossible)
};

// Decrypts every input into /data, projected; starts the metrics relay.
// A failure is also reported on ctl_fd as kInputError with its Errc.
[[nodiscard]] Status StageIn(const StagePlan& plan);

// Seals every regular file under /out into output_dir_fd, reporting each on ctl_fd.
[[nodiscard]] Status StageOut(const StagePlan& plan, int output_dir_fd);

// Sends one datagram; the runner side uses it too.
[[nodiscard]] Status SendMessage(int fd, Msg type, std::string_view payload);

// Percent-encodes '/' and '%' so a relative path is a valid dataset name.
[[nodiscard]] std::string DatasetForOutput(const std::string& relative);

}  // namespace cordon::runner::internal
