// deps_check fixture: specs may not include the orchestrator, nor yaml-cpp (only the strict loader may).
#include "cordon/audit/audit.h"
#include <yaml-cpp/yaml.h>
#include "cordon/yaml/strict_yaml.h"  // allowed
