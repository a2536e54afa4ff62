// deps_check fixture: sealed may not know the daemon or the config.
#include "cordon/daemon/daemon.h"
#include "cordon/config/config.h"
#include "cordon/kms/kms.h"  // allowed
