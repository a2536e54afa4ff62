// The fixed-size record the sandbox init writes to the caller over a pipe (one write, atomic:
// smaller than PIPE_BUF). Plain data only: it is written after the trainer is dead, read by the
// caller, and never contains anything the trainer wrote.
#pragma once

#include <cstdint>

namespace cordon::sandbox {

enum class ReportKind : std::uint32_t { kTrainerStarted = 1, kFinal = 2 };

// One kind of denied call: syscall number, detail (socket family, else -1), count, class.
struct DenialCount {
  std::int32_t nr;
  std::int32_t detail;
  std::uint32_t count;
  std::uint8_t probe;  // 1: a harmless probe; 0: an escape attempt (a violation)
};

struct InitReport {
  ReportKind kind = ReportKind::kFinal;
  char failed_step[48] = {};  // empty: no set-up failure
  char message[512] = {};
  std::int32_t wait_status = 0;
  std::uint8_t trainer_reaped = 0;
  std::uint8_t timed_out = 0;
  std::uint8_t scratch_noswap = 0;
  std::uint8_t exec_failed = 0;
  std::uint8_t dev_nodes_bound = 0;  // mknod refused: /dev's nodes bound from the caller's /dev
  std::uint8_t hostname_set = 0;     // sethostname refused (e.g. ProtectHostname=yes): 0
  std::uint8_t loopback_up = 0;      // SIOCSIFFLAGS refused (no CAP_NET_ADMIN): 0
  std::int32_t exec_errno = 0;
  char cpus[128] = {};  // the CPUs the job ran on, in the kernel's list format
  std::int64_t wall_ms = 0, cpu_user_ms = 0, cpu_system_ms = 0, max_rss_kb = 0;
  std::uint64_t scratch_size = 0, scratch_peak = 0, scratch_final = 0;
  std::uint64_t scratch_data = 0, scratch_out = 0, scratch_tmp = 0;
  std::uint8_t scratch_full = 0;
  std::uint64_t violations_total = 0, probes_total = 0;
  std::uint32_t denial_kinds = 0;
  DenialCount denials[64] = {};
};
static_assert(sizeof(InitReport) < 4096, "must fit one atomic pipe write");

}  // namespace cordon::sandbox
