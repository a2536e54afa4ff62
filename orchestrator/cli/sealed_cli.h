// Shared by the key and sealed-file subcommands (keys, seal, unseal, rewrap,
// inspect): exit codes, config -> KMS, progress on a terminal, JSON reports.
#pragma once

#include <algorithm>
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "commands.h"
#include "cordon/error.h"
#include "cordon/audit/audit.h"
#include "cordon/exit_codes.h"
#include "cordon/sealed/sealed.h"

namespace cordon::cli {

// Their exit statuses (the sealed-file group of cordon/exit_codes.h) and what each
// means, in the order --help lists them.
inline constexpr std::array<std::pair<int, std::string_view>, kSealedExitStatuses.size()> kSealedExitMeanings{{
    {kExitOk, "ok"},
    {kExitFailure, "failed (I/O, ...)"},
    {kExitInvalid, "usage or config error"},
    {kExitNotSealed, "not a sealed file"},
    {kExitUnsupportedVersion, "unsupported format version"},
    {kExitUnknownKey, "unknown key or key version"},
    {kExitKeyDisabled, "key disabled"},
    {kExitWrongKey, "wrong key"},
    {kExitHeaderTampered, "header tampered"},
    {kExitChunkAuth, "chunk N failed authentication"},
    {kExitTruncated, "truncated"},
    {kExitTrailingData, "trailing data"},
    {kExitKmsUnavailable, "KMS unavailable (PKCS#11 module, token, PIN; adapter not configured)"},
}};
static_assert(std::ranges::all_of(kSealedExitStatuses, [](int status) {
  return std::ranges::any_of(kSealedExitMeanings, [&](const auto& m) { return m.first == status; });
}), "every sealed-file exit status has a meaning for --help");

// "Exit status: 0 ok, 1 failed (I/O, ...), ..." from kSealedExitMeanings, wrapped at 90 columns.
[[nodiscard]] std::string SealedExitFooter();
// "Exit status: N meaning, ..." wrapped at 90 columns (every command's --help footer).
[[nodiscard]] std::string ExitStatusLine(const std::vector<std::pair<int, std::string>>& statuses);

// Prints "cordon <command>: <message>" to stderr and returns the exit status for `error`.
[[nodiscard]] int ReportError(std::string_view command, const Error& error);

// The config named by --config / $CORDON_CONFIG, mapped to cached KMS adapters.
// On failure prints the problem and returns nullopt (exit kExitInvalid).
[[nodiscard]] std::optional<sealed::KeyManagers> KeyManagersFromConfig(const GlobalOptions& global,
                                                                      std::string_view command,
                                                                      kms::Options* options_out = nullptr);

// A progress line (bytes, rate, ETA) on stderr when stderr is a terminal; a
// no-op callback otherwise. Finish() ends the line.
class ProgressLine final {
 public:
  explicit ProgressLine(std::string verb);
  ~ProgressLine();
  [[nodiscard]] sealed::Progress callback();
  void Finish();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// The report as JSON (what an audit entry would carry).
[[nodiscard]] nlohmann::json ReportJson(std::string_view operation, const sealed::Report& report);

// Write-ahead audit of one key or sealed-file operation. Begin() appends the
// action as an intent *before* the caller acts; when the log cannot record it
// Begin() prints why and returns nullopt, and the caller must not act.
// Done() appends the outcome: "ok" with the operation's report, or "failed"
// with the error. Member names that would trip the log's secret guard ("key")
// are recorded as references ("key_ref").
class AuditedOperation final {
 public:
  [[nodiscard]] static std::optional<AuditedOperation> Begin(const GlobalOptions& global, std::string_view command,
                                                             std::string action, nlohmann::json details);
  void Done(const nlohmann::json& detail, const Error* error);

 private:
  AuditedOperation(std::shared_ptr<audit::AuditLog> log, audit::Intent intent)
      : log_(std::move(log)), intent_(std::move(intent)) {}
  std::shared_ptr<audit::AuditLog> log_;
  audit::Intent intent_;
};

}  // namespace cordon::cli
