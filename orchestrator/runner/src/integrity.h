// The runner's side of the dataset registry (datasets.h): at step 2 a
// quarantined version is refused before any key is touched, and the
// baseline of `max_drift` is looked up (after a failed `expect:` the runner quarantines
// the version with datasets::QuarantineVersion). Private to the runner.
#pragma once

#include <optional>
#include <string>

#include "cordon/error.h"
#include "cordon/datasets/expectations.h"
#include "cordon/sealed/sealed.h"

namespace cordon::runner::internal {

// Why the sealed file open at `fd` (dataset `dataset`, header and sizes `info`) may not be
// used, or nullopt (datasets::CheckQuarantine: when a quarantined version could be this file
// and `sha256` is empty, the file is hashed through `fd` and `sha256` set). An unreadable
// registry is an error (fail closed).
[[nodiscard]] Result<std::optional<std::string>> QuarantineReason(const std::string& state_dir, const std::string& dataset,
                                                                  int fd, const sealed::SealedInfo& info,
                                                                  std::string& sha256);

// The summaries of the dataset's last known good version, if one is marked.
[[nodiscard]] std::optional<orchestrator::Summaries> LastGoodSummaries(const std::string& state_dir,
                                                                      const std::string& dataset);


}  // namespace cordon::runner::internal
