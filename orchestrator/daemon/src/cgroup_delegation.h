// cgroup v2 delegation for cordond (docs/DAEMON.md, "cgroups").
//
// Under systemd with Delegate=yes, cordond owns the cgroup it was started in (e.g.
// /system.slice/cordond.service) and everything below it. The no-internal-process rule says a
// v2 cgroup with processes of its own cannot enable controllers for its children, so at start
// cordond moves itself (and any other process of the service) into a `supervisor` leaf, then
// enables exactly the controllers jobs need (memory pids cpu) in the service cgroup's
// cgroup.subtree_control. Job cgroups are then created beside `supervisor`, inside the delegated
// subtree, so `systemctl stop` and the service's own limits reach them.
//
// On a hybrid/v1 host (the controllers are bound to v1 hierarchies) nothing is moved and the
// sandbox keeps its v1 behaviour. Call before any thread or child exists.
#pragma once

#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::daemon {

struct CgroupDelegationOptions {
  // The cgroup2 mount point; empty: the first cgroup2 mount in /proc/self/mountinfo.
  std::string mount;
  // Our cgroup below the mount; empty: the "0::" line of /proc/self/cgroup.
  std::string own_path;
  // Controllers jobs need: enabled in the delegated cgroup's subtree_control, nothing else.
  std::vector<std::string> controllers{"memory", "pids", "cpu"};
  std::string leaf = "supervisor";
};

struct CgroupDelegation {
  enum class Mode { kV2Delegated, kNotDelegated };
  Mode mode = Mode::kNotDelegated;
  // kV2Delegated: the cgroup (path below the cgroup2 mount, e.g. "/system.slice/cordond.service")
  // jobs are created in: pass it as sandbox::Policy::cgroup_parent. Empty otherwise.
  std::string job_parent;
  std::string supervisor;  // kV2Delegated: job_parent + "/supervisor", where cordond now runs
  std::string reason;      // kNotDelegated: why (for the log line at start-up)
};

// Returns kNotDelegated (with the reason) when there is no cgroup2 mount, the controllers are
// not available to our cgroup (v1 host), or we run in the root cgroup; an error when they are
// available but moving or enabling failed (the service would create job cgroups outside its
// subtree: cordond should refuse to start).
[[nodiscard]] Result<CgroupDelegation> SetUpCgroupDelegation(const CgroupDelegationOptions& options = {});

}  // namespace cordon::daemon
