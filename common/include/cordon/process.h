// Child processes: one way to start a program (Spawn) and to wait for one,
// plus facts about a process that survive pid reuse.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/unique_fd.h"

namespace cordon {

// The process's start time (field 22 of /proc/PID/stat, clock ticks since
// boot), or 0 when no such process exists. A pid with the same start time is
// the same process: use the pair wherever a pid is remembered (a job's runner,
// the owner of a cgroup), never the bare pid.
[[nodiscard]] std::uint64_t ProcessStartTime(pid_t pid);

// How Spawn starts a program. The child gets exactly these descriptors on
// 0, 1 and 2 plus `pass_fds` (under the same numbers); everything else this
// process holds must be close-on-exec. Its signal mask is empty and SIGPIPE,
// SIGTERM, SIGINT and SIGHUP are back to their defaults, so a parent that
// ignores or blocks them does not pass that on.
struct SpawnOptions {
  std::vector<std::string> argv;                // argv[0] is the path run (no PATH search)
  std::optional<std::vector<std::string>> env;  // "NAME=value" each; nullopt: this process's environment
  int stdin_fd = -1;                            // -1: /dev/null
  int stdout_fd = -1;                           // -1: /dev/null
  std::string stderr_path = "/dev/null";        // opened write-only, created 0600, truncated
  std::vector<int> pass_fds;
  bool setsid = false;  // the child leads its own session and process group
};

// A started child. The pidfd becomes readable when the child exits (poll it or
// hand it to an event loop); signal through it (PidfdSignal), never through the
// bare pid, so a reused pid is never hit. The caller reaps the child (WaitChild).
struct Child {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// posix_spawn (no code of ours runs in the child between fork and exec), every
// file action and attribute checked: a failure names the action and the program.
[[nodiscard]] Result<Child> Spawn(const SpawnOptions& options);

// pidfd_open(2) for `pid` (a child not yet reaped); -1 when it fails.
[[nodiscard]] int PidfdOpen(pid_t pid);
// pidfd_send_signal(2).
Status PidfdSignal(int pidfd, int sig);
// waitpid(2), retrying EINTR: the child's wait status (as from waitpid).
[[nodiscard]] Result<int> WaitChild(pid_t pid, int options = 0);

}  // namespace cordon
