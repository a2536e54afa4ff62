// deps_check fixture: no include climbs out of its folder, and kms knows no orchestrator header.
#include "../../orchestrator/runner/src/stage.h"
#include "cordon/runner/runner.h"
