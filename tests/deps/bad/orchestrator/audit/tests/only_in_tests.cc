// deps_check fixture: a component's tests may use cordon::testing, nothing more.
#include "cordon/testing/temp_dir.h"  // allowed
#include "cordon/sealed/sealed.h"
