// The one table of the `cordon` CLI's exit statuses (docs/CLI.md is the contract; never change a
// value). Here rather than in cli/ because the runner library maps its JobOutcome to these
// statuses (runner::ExitStatusFor) and a library must not include the CLI's private headers.
//
// Groups are separate name spaces of numbers: 10..19 mean one thing for the sealed-file commands
// and another for `cordon run` / `cordon wait`. Within a group no two statuses share a value
// (checked below and in orchestrator/runner/tests/exit_codes_test.cc).
#pragma once

#include <algorithm>
#include <array>

namespace cordon {

// General, every command (docs/CLI.md "Exit status"; the cordond clients for 3..5).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the operation was attempted and failed
inline constexpr int kExitInvalid = 2;      // bad usage or invalid input (spec, config, flags)
inline constexpr int kExitDenied = 3;       // refused by cordond's access policy
inline constexpr int kExitNotFound = 4;     // no such job of yours
inline constexpr int kExitUnavailable = 5;  // cordond busy, or its audit log cannot record: try later

// Sealed files: seal / unseal / rewrap / inspect / keys / outputs extract (docs/SEALED-FORMAT.md).
inline constexpr int kExitNotSealed = 10;           // no sealed-file magic
inline constexpr int kExitUnsupportedVersion = 11;  // a format version this build cannot read
inline constexpr int kExitUnknownKey = 12;          // no such key / key version / adapter
inline constexpr int kExitKeyDisabled = 13;         // the key is disabled
inline constexpr int kExitWrongKey = 14;            // wrapped under other key material
inline constexpr int kExitHeaderTampered = 15;      // header altered or malformed
inline constexpr int kExitChunkAuth = 16;           // chunk N failed authentication
inline constexpr int kExitTruncated = 17;           // chunks missing at the end
inline constexpr int kExitTrailingData = 18;        // bytes after the final chunk
inline constexpr int kExitKmsUnavailable = 19;      // module / token / PIN unusable, adapter not configured

// `cordon run`: one per runner::JobOutcome (runner::ExitStatusFor; kSucceeded is kExitOk).
inline constexpr int kExitTrainerFailed = 10;     // the trainer exited non-zero or died of a signal
inline constexpr int kExitTimeout = 11;           // the wall-clock timeout killed the job
inline constexpr int kExitMemoryLimit = 12;       // the memory limit killed the trainer
inline constexpr int kExitSandboxViolation = 13;  // the trainer tried a denied syscall
inline constexpr int kExitInputRejected = 14;     // an input failed its pin, authentication, ...
inline constexpr int kExitSetupError = 15;        // Cordon could not run the job
inline constexpr int kExitCancelled = 16;         // stopped from outside (signal, `cordon cancel`)

// `cordon wait JOB`: the job's state. succeeded 0, failed `cordon run`'s 10..15, cancelled
// kExitCancelled (16, as `cordon run`), halted kExitHalted (18, as `cordon run`), rejected
// kExitInvalid, and:
inline constexpr int kExitInterrupted = 17;  // cordond ended while the job ran (marked at its restart)

// `cordon run` and `cordon wait`: after 17, which `wait` already uses.
inline constexpr int kExitHalted = 18;  // stopped by an admin's `cordon halt`: nothing it produced was sealed

// Each group as the statuses a command of it can exit with, for the checks.
inline constexpr std::array kGeneralExitStatuses{kExitOk, kExitFailure, kExitInvalid,
                                                 kExitDenied, kExitNotFound, kExitUnavailable};
inline constexpr std::array kSealedExitStatuses{
    kExitOk, kExitFailure, kExitInvalid, kExitNotSealed, kExitUnsupportedVersion, kExitUnknownKey,
    kExitKeyDisabled, kExitWrongKey, kExitHeaderTampered, kExitChunkAuth, kExitTruncated,
    kExitTrailingData, kExitKmsUnavailable};
inline constexpr std::array kRunExitStatuses{
    kExitOk, kExitFailure, kExitInvalid, kExitTrainerFailed, kExitTimeout, kExitMemoryLimit,
    kExitSandboxViolation, kExitInputRejected, kExitSetupError, kExitCancelled, kExitHalted};
inline constexpr std::array kWaitExitStatuses{
    kExitOk, kExitFailure, kExitInvalid, kExitDenied, kExitNotFound, kExitUnavailable,
    kExitTrainerFailed, kExitTimeout, kExitMemoryLimit, kExitSandboxViolation, kExitInputRejected,
    kExitSetupError, kExitCancelled, kExitInterrupted, kExitHalted};

// True when no two statuses of `group` share a value.
template <std::size_t N>
constexpr bool ExitStatusesDistinct(std::array<int, N> group) {
  std::ranges::sort(group);
  return std::ranges::adjacent_find(group) == group.end();
}
static_assert(ExitStatusesDistinct(kGeneralExitStatuses));
static_assert(ExitStatusesDistinct(kSealedExitStatuses));
static_assert(ExitStatusesDistinct(kRunExitStatuses));
static_assert(ExitStatusesDistinct(kWaitExitStatuses));

}  // namespace cordon
