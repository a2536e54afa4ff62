// Shared by the dataset and incident-response commands (datasets, quarantine,
// release, restore, halt, incident report, rewrap --all): who the caller is,
// the write-ahead audit of each step under that identity, and the way a
// non-root admin reaches them — through cordond, which checks `admins:` in
// policy.yaml and runs the same command as root for them (docs/DAEMON.md
// "admin"), passing the caller's uid from SO_PEERCRED as --caller-uid.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cordon/audit/audit.h"
#include "cordon/config/config.h"
#include "cordon/daemon/protocol.h"
#include "cordon/datasets/datasets.h"
#include "cordon/sealed/sealed.h"
#include "cordon/unique_fd.h"

namespace cordon::cli {

// The hidden option cordond appends (accepted only from root).
void AddCallerOption(CLI::App* sub, std::optional<uid_t>& caller_uid);

struct IncidentContext {
  orchestrator::Config config;
  datasets::Caller caller;   // who asked: the local user, or cordond's peer
  std::string via;           // "local" or "cordond"
  std::unique_ptr<audit::AuditLog> log;
  std::optional<datasets::Registry> registry;

  // The KMS adapters of the config (opened on first use).
  [[nodiscard]] const sealed::KeyManagers& kms();
  // Write-ahead: the intent is durable before the step; nullopt (and a message)
  // when the log cannot record it, and the caller must not act.
  [[nodiscard]] std::optional<audit::Intent> Begin(const std::string& action, nlohmann::json details,
                                                   const std::string& job = "");
  void Done(const std::optional<audit::Intent>& intent, bool ok, nlohmann::json details);
  // A complete entry (no separate intent), for reads worth recording.
  bool Record(const std::string& action, const std::string& outcome, nlohmann::json details);

 private:
  std::optional<sealed::KeyManagers> kms_;
  nlohmann::json subject_;  // the last intent's dataset / key_ref / version, repeated in its outcome
  audit::Actor Actor() const;
  audit::Event Event(const std::string& action, const std::string& job, const std::string& outcome,
                     nlohmann::json details) const;
};

// Root: the config, the audit log, the registry, the caller (getuid, or
// --caller-uid as set by cordond). Not root: nullopt, and `forward` says to
// send the command through cordond instead. Errors are printed.
struct Opened {
  std::optional<IncidentContext> context;
  bool forward = false;
  int exit_status = kExitOk;
};
[[nodiscard]] Opened OpenIncidentContext(const GlobalOptions& global, const std::string& command,
                                         std::optional<uid_t> caller_uid, bool needs_registry = true);

// Sends `argv` (the command and its arguments, as typed) to cordond as an
// `admin` request, prints what the command printed there, and returns its
// exit status (kExitDenied when the caller is not an admin).
[[nodiscard]] int ForwardToDaemon(const GlobalOptions& global, const std::vector<std::string>& argv);

// "DATASET" or "DATASET@VERSION".
struct DatasetRef {
  std::string name;
  std::string version;  // empty: the whole dataset
};
[[nodiscard]] DatasetRef ParseDatasetRef(const std::string& text);

// Registers the file `cordon seal` just wrote (a profile pass over it, then the
// registry entry, audited as dataset.registered). All or nothing: when the
// registry cannot record it, the file is removed (if it is still the one
// sealed), so a version is never left sealed but unregistered. Errors are
// printed; false on failure. Not root: nothing to do (the registry is root's).
[[nodiscard]] bool RegisterSealed(const GlobalOptions& global, const std::string& path, const sealed::Report& report);

std::string Iso8601Utc(std::int64_t unix_seconds);

// `cordon rewrap --all --key KEY [--dir DIR]... [--batch N]` (rewrap_all.cc).
[[nodiscard]] int RewrapAll(const GlobalOptions& global, const std::string& key, const std::vector<std::string>& dirs,
                            bool json_out, std::optional<uid_t> caller_uid, std::size_t batch_files);

}  // namespace cordon::cli
