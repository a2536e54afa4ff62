// Audit entries as OCSF 1.1 events (Open Cybersecurity Schema Framework), for SIEM ingestion:
// `cordon audit show --format ocsf`, one event per line. docs/AUDIT-FORMAT.md ("OCSF") has the
// mapping table and an example. The events are a view of the log: they carry the entry's seq
// and hash (metadata.sequence, metadata.uid) so a SIEM finding can be checked against the
// verified log, but they are not themselves verifiable.
//
// - Process Activity (class_uid 1007): a process started or ended — daemon.started/stopped,
//   sandbox.start (the trainer's sandbox launched), job.finished/completed/interrupted.
// - API Activity (class_uid 6003): every other entry — a request or operation on a Cordon
//   object (job, dataset, key, policy, output, log), activity Create/Read/Update/Delete or
//   Other (99) with activity_name the Cordon action.
// Common to both: actor (user uid + name, process pid + name), status (Success/Failure/Other
// for a write-ahead intent), severity, time (epoch ms), metadata (product, version, log_name,
// sequence, uid = entry hash, correlation_uid = the job id), the entry's details as unmapped.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace cordon::audit {

struct OcsfContext {
  std::string product_version;  // Cordon's version (metadata.product.version)
  std::string hostname;         // where the log lives (device / src_endpoint hostname)
};

inline constexpr const char* kOcsfVersion = "1.1.0";

// One audit entry (as stored) -> one OCSF event. Never throws on a well-formed entry; members
// missing from a malformed one are left out of the event.
[[nodiscard]] nlohmann::json ToOcsf(const nlohmann::json& entry, const OcsfContext& context);

}  // namespace cordon::audit
