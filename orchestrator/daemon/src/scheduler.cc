#include "scheduler.h"

#include <utility>

namespace cordon::daemon {

std::optional<std::size_t> PickNext(const std::vector<QueuedJob>& queued, const SchedulerState& state) {
  const auto key = [&](const QueuedJob& j) {
    const auto running = state.running_by_user.find(j.submitter);
    const auto served = state.last_served.find(j.submitter);
    return std::tuple(running == state.running_by_user.end() ? 0 : running->second,
                      served == state.last_served.end() ? 0 : served->second, j.seq);
  };
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < queued.size(); ++i) {
    if (!best || key(queued[i]) < key(queued[*best])) best = i;
  }
  return best;
}

}  // namespace cordon::daemon
