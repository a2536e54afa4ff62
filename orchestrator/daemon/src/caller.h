// Who is asking cordond for something, as the kernel says: SO_PEERCRED for the
// socket, the file's owner for the spool. Never taken from a request.
#pragma once

#include <sys/types.h>

#include <string>

#include "cordon/policy/policy.h"

namespace cordon::daemon {

struct Caller {
  policy::Caller id;
  pid_t pid = 0;
  std::string via;  // "socket" or "spool"
};

}  // namespace cordon::daemon
