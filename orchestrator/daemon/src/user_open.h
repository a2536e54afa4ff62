// cordond's name for the open-as-submitter code, which lives in the
// runner library (cordon/runner/user_open.h) so that `cordon run
// --as-submitter` on a Slurm node uses the very same code.
#pragma once

#include "cordon/runner/user_open.h"

namespace cordon::daemon {
using useropen::Identity;
using useropen::IdentityOf;
using useropen::OpenAsUser;
using useropen::OpenKind;
using useropen::OpenNoSymlinks;
using useropen::OpenRequest;
using useropen::WalkNoSymlinks;
}  // namespace cordon::daemon
