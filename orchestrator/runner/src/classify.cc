#include "classify.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "cordon/units.h"

namespace cordon::runner::internal {
namespace {

// "1.0 GiB", "900 MiB", "12 KiB": sizes in reasons, for people (FormatSize is exact, for specs).
std::string Approx(std::uint64_t bytes) {
  constexpr std::array<const char*, 4> kUnits{"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  for (value /= 1024; value >= 1024 && unit + 1 < kUnits.size(); value /= 1024) ++unit;
  char text[32];
  std::snprintf(text, sizeof text, value < 10 ? "%.1f %s" : "%.0f %s", value, kUnits[unit]);
  return text;
}

std::string ScratchByDir(const sandbox::RunResult& r) {
  return "/out " + Approx(r.scratch_out_bytes) + ", /data " + Approx(r.scratch_data_bytes) + ", /tmp " +
         Approx(r.scratch_tmp_bytes);
}

// "memory limit 1.1 GiB (memory 1 GiB + scratch 128 MiB) reached: trainer RSS peak 300 MiB, scratch 700 MiB (...)"
std::string MemoryKillReason(const sandbox::RunResult& r, const specs::Resources& spec) {
  std::string reason = "memory limit " + Approx(r.memory_limit_bytes) + " (memory " + FormatSize(spec.memory_bytes) +
                       " + scratch " + FormatSize(spec.scratch_bytes) + ") reached: trainer RSS peak " +
                       Approx(r.max_rss_bytes);
  if (r.scratch_size_bytes == 0) return reason + ", scratch use unknown (the sandbox init itself was killed)";
  return reason + ", scratch " + Approx(std::max(r.scratch_peak_bytes, r.scratch_final_bytes)) + " at its peak (" +
         ScratchByDir(r) + " at the end)";
}

// "scratch full: 1.0 GiB of 1.0 GiB used (/out 900 MiB, /data 100 MiB, /tmp 24 KiB); " or "".
std::string ScratchFullNote(const sandbox::RunResult& r) {
  if (!r.scratch_full) return "";
  return "scratch full: " + Approx(std::max(r.scratch_peak_bytes, r.scratch_final_bytes)) + " of " +
         Approx(r.scratch_size_bytes) + " used (" + ScratchByDir(r) + "); ";
}

}  // namespace

std::optional<Verdict> ClassifyRun(const sandbox::RunResult& r, const specs::Resources& resources,
                                   const RunContext& context) {
  if (context.halted) {
    return Verdict{JobOutcome::kHalted, "halted (cordon halt): the sandbox was killed; nothing it produced was sealed"};
  }
  using sandbox::Outcome;
  // The OOM killer may have picked a child of the trainer, which then exits non-zero.
  if ((r.outcome == Outcome::kOk && r.exit_code != 0) || r.outcome == Outcome::kSignaled) {
    if (r.memory_limit_hit) return Verdict{JobOutcome::kMemoryLimit, MemoryKillReason(r, resources)};
  }
  switch (r.outcome) {
    case Outcome::kOk:
      if (r.exit_code == 0) return std::nullopt;
      return Verdict{JobOutcome::kTrainerFailed, ScratchFullNote(r) + "the trainer exited with status " + std::to_string(r.exit_code)};
    case Outcome::kSignaled:
      return Verdict{JobOutcome::kTrainerFailed, ScratchFullNote(r) + "the trainer died of signal " + std::to_string(r.signal)};
    case Outcome::kTimeout:
      return Verdict{JobOutcome::kTimeout, "the job ran past its timeout of " + FormatDuration(resources.timeout)};
    case Outcome::kViolation:
      return Verdict{JobOutcome::kSandboxViolation, "the trainer broke the sandbox policy: " + r.reason};
    case Outcome::kExternalKill:
      if (context.overran) {
        return Verdict{JobOutcome::kSetupError, "the sandbox outlived the timeout plus the stage-out deadline (" +
                                                    FormatDuration(context.stage_out_deadline) + ") and was killed"};
      }
      return context.cancelled ? Verdict{JobOutcome::kCancelled, "cancelled"}
                               : Verdict{JobOutcome::kSetupError, "the sandbox was killed from outside"};
    case Outcome::kSetupError:
      if (r.failed_step == "exec-trainer") {  // the image's fault: a missing command or interpreter
        return Verdict{JobOutcome::kTrainerFailed, r.reason.substr(std::min(r.reason.size(), r.failed_step.size() + 2))};
      }
      if (context.input_error) {
        return Verdict{JobOutcome::kInputRejected, "input '" + context.input_error->value("input", "") + "': " +
                                                       context.input_error->value("message", "")};
      }
      return Verdict{JobOutcome::kSetupError, "sandbox step " + r.failed_step + ": " + r.reason};
  }
  return Verdict{JobOutcome::kSetupError, "the sandbox reported an unknown outcome"};
}

}  // namespace cordon::runner::internal
