// cordond's fair scheduler, as a pure function (unit-tested on its own).
// Among users with queued jobs, the one with the fewest running jobs goes
// first, ties broken by who was served longest ago; within a user, FIFO.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace cordon::daemon {

struct QueuedJob {
  std::uint64_t seq = 0;  // submission order
  uid_t submitter = 0;
};

struct SchedulerState {
  std::map<uid_t, std::size_t> running_by_user;
  std::map<uid_t, std::uint64_t> last_served;  // larger = served more recently; absent = never
};

// The index in `queued` (ordered by seq) of the job to start next, or nullopt
// when nothing is queued.
[[nodiscard]] std::optional<std::size_t> PickNext(const std::vector<QueuedJob>& queued, const SchedulerState& state);

}  // namespace cordon::daemon
