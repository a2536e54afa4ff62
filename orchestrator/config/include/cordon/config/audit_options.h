// The audit writer's options from cordon.yaml (audit_dir + the audit: section).
//   auto log = audit::AuditLog::Open(orchestrator::AuditOptionsFor(config));
#pragma once

#include <chrono>

#include "cordon/audit/audit.h"
#include "cordon/config/config.h"

namespace cordon::orchestrator {

[[nodiscard]] inline audit::Options AuditOptionsFor(const Config& c) {
  audit::Options o;
  o.dir = c.audit_dir;
  o.checkpoint_every = c.audit.checkpoint_every;
  o.checkpoint_interval = std::chrono::seconds(c.audit.checkpoint_interval_s);
  return o;
}

}  // namespace cordon::orchestrator
