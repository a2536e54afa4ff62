// Facts about a process that survive pid reuse.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace cordon {

// The process's start time (field 22 of /proc/PID/stat, clock ticks since
// boot), or 0 when no such process exists. A pid with the same start time is
// the same process: use the pair wherever a pid is remembered (a job's runner,
// the owner of a cgroup), never the bare pid.
[[nodiscard]] std::uint64_t ProcessStartTime(pid_t pid);

}  // namespace cordon
