// deps_check fixture: the sandbox may not read YAML or job specs.
#include <yaml-cpp/yaml.h>
#include "cordon/specs/spec.h"
#include "cordon/unique_fd.h"  // allowed: common
