// Maps cordon.yaml's kms section to the options the KMS adapters take
// (kms-adapters knows nothing of the config file).
#pragma once

#include "cordon/kms/kms.h"
#include "cordon/config/config.h"

namespace cordon::orchestrator {

[[nodiscard]] kms::Options KmsOptionsFrom(const Config& config);

}  // namespace cordon::orchestrator
