#include "sealed_cli.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "cordon/config/audit_options.h"
#include "cordon/config/config.h"
#include "cordon/config/kms_options.h"
#include "cordon/secret.h"

namespace cordon::cli {

int ReportError(std::string_view command, const Error& error) {
  std::cerr << "cordon " << command << ": " << error.message << "\n";
  switch (error.code) {
    case Errc::kWrongFormat: return kExitNotSealed;
    case Errc::kUnsupported: return kExitUnsupportedVersion;
    case Errc::kKeyUnknown: return kExitUnknownKey;
    case Errc::kKeyDisabled: return kExitKeyDisabled;
    case Errc::kWrongKey: return kExitWrongKey;
    case Errc::kTampered:
    case Errc::kInvalidData: return kExitHeaderTampered;
    case Errc::kIntegrity: return kExitChunkAuth;
    case Errc::kTruncated: return kExitTruncated;
    case Errc::kTrailingData: return kExitTrailingData;
    case Errc::kKmsUnavailable: return kExitKmsUnavailable;
    case Errc::kInvalidArgument: return kExitInvalid;
    default: return kExitFailure;
  }
}

std::string ExitStatusLine(const std::vector<std::pair<int, std::string>>& statuses) {
  constexpr std::size_t kWidth = 90;
  std::string footer = "Exit status:";
  std::size_t line = footer.size();
  for (std::size_t i = 0; i < statuses.size(); ++i) {
    const auto& [status, meaning] = statuses[i];
    const std::string item = std::to_string(status) + " " + meaning + (i + 1 < statuses.size() ? "," : ".");
    const bool wrap = i > 0 && line + 1 + item.size() > kWidth;
    footer += (wrap ? "\n" : " ") + item;
    line = (wrap ? 0 : line + 1) + item.size();
  }
  return footer;
}

std::string SealedExitFooter() {
  std::vector<std::pair<int, std::string>> statuses;
  for (const auto& [status, meaning] : kSealedExitMeanings) statuses.emplace_back(status, meaning);
  return ExitStatusLine(statuses);
}

std::optional<sealed::KeyManagers> KeyManagersFromConfig(const GlobalOptions& global, std::string_view command,
                                                        kms::Options* options_out) {
  // This process is about to hold key material: no core dumps, no ptrace by peers.
  if (auto hardened = HardenKeyHoldingProcess(); !hardened) {
    std::cerr << "cordon " << command << ": warning: " << hardened.error().message << "\n";
  }
  const std::string path = orchestrator::ResolveConfigPath(global.config);
  auto config = orchestrator::LoadConfig(path);
  if (!config) {
    std::cerr << "cordon " << command << ": " << config.error().message << "\n";
    return std::nullopt;
  }
  kms::Options options = orchestrator::KmsOptionsFrom(*config);
  if (options_out != nullptr) *options_out = options;
  return sealed::CachedKeyManagers(std::move(options));
}

namespace {

std::string Human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

}  // namespace

struct ProgressLine::State {
  std::string verb;
  bool tty = ::isatty(STDERR_FILENO) == 1;
  bool printed = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last{};
};

ProgressLine::ProgressLine(std::string verb) : state_(std::make_shared<State>()) { state_->verb = std::move(verb); }

ProgressLine::~ProgressLine() { Finish(); }

sealed::Progress ProgressLine::callback() {
  if (!state_->tty) return {};
  return [s = state_](std::uint64_t done, std::uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - s->last < std::chrono::milliseconds(200)) return;
    s->last = now;
    const double secs = std::chrono::duration<double>(now - s->start).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::string line = "\r" + s->verb + " " + Human(static_cast<double>(done));
    if (total > 0) line += " / " + Human(static_cast<double>(total));
    line += "  " + Human(rate) + "/s";
    if (total > done && rate > 0) {
      line += "  ETA " + std::to_string(static_cast<long long>(static_cast<double>(total - done) / rate)) + "s";
    }
    line += "   ";
    std::cerr << line << std::flush;
    s->printed = true;
  };
}

void ProgressLine::Finish() {
  if (state_ && state_->printed) {
    std::cerr << "\n";
    state_->printed = false;
  }
}

nlohmann::json ReportJson(std::string_view operation, const sealed::Report& r) {
  nlohmann::json j = {{"operation", operation},
                      {"key", r.key.ToString()},
                      {"key_version", r.kek_version},
                      {"dataset", r.dataset},
                      {"chunk_bytes", r.chunk_bytes},
                      {"plaintext_bytes", r.plaintext_bytes},
                      {"sealed_bytes", r.sealed_bytes},
                      {"chunks", r.chunks}};
  if (!r.job.empty()) j["job"] = r.job;
  if (!r.sha256.empty()) j["sha256"] = r.sha256;
  if (r.previous_key) {
    j["previous_key"] = r.previous_key->ToString();
    j["previous_key_version"] = r.previous_kek_version;
  }
  return j;
}

namespace {

// "key" and "previous_key" name references here; the audit guard wants that said.
nlohmann::json AsReferences(nlohmann::json detail) {
  if (!detail.is_object()) return nlohmann::json::object();
  for (const char* name : {"key", "previous_key"}) {
    if (detail.contains(name)) {
      detail[std::string(name) + "_ref"] = detail[name];
      detail.erase(name);
    }
  }
  return detail;
}

}  // namespace

std::optional<AuditedOperation> AuditedOperation::Begin(const GlobalOptions& global, std::string_view command,
                                                        std::string action, nlohmann::json details) {
  auto config = orchestrator::LoadConfig(orchestrator::ResolveConfigPath(global.config));
  if (!config) {
    std::cerr << "cordon " << command << ": " << config.error().message << "\n";
    return std::nullopt;
  }
  auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(*config));
  if (!log) {
    std::cerr << "cordon " << command << ": refusing to act without an audit record: " << log.error().message << "\n";
    return std::nullopt;
  }
  audit::Event event;
  event.action = std::move(action);
  event.details = AsReferences(std::move(details));
  auto intent = (*log)->Begin(std::move(event));
  if (!intent) {
    std::cerr << "cordon " << command << ": refusing to act without an audit record: " << intent.error().message << "\n";
    return std::nullopt;
  }
  return AuditedOperation(std::shared_ptr<audit::AuditLog>(std::move(*log)), std::move(*intent));
}

void AuditedOperation::Done(const nlohmann::json& detail, const Error* error) {
  nlohmann::json details = AsReferences(detail);
  if (error != nullptr) {
    details["error"] = error->message.substr(0, 512);
    details["error_code"] = std::string(ErrcName(error->code));
  }
  auto done = log_->Finish(intent_, error == nullptr ? "ok" : "failed", std::move(details));
  if (!done) std::cerr << "cordon: warning: the audit log did not record the outcome: " << done.error().message << "\n";
}

}  // namespace cordon::cli
