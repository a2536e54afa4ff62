// The job's cgroup: memory, pids and CPU limits. cgroup v2 when the unified hierarchy offers the
// controllers the limits need; v1 controllers otherwise (hybrid hosts); an error when neither.
// The job cgroup is a child of the caller's own cgroup. Destruction kills what is left in it
// and removes it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::sandbox {

struct CgroupLimits {
  std::uint64_t memory_bytes = 0;  // 0: no limit
  std::uint64_t pids = 0;
  double cpus = 0;
  std::string parent;  // v2: cgroup path (e.g. "/cordon.slice") to create the job cgroup under
};

struct CgroupStats {
  std::uint64_t peak_memory_bytes = 0;
  bool memory_limit_hit = false;
  bool pids_limit_hit = false;
  bool cpu_throttled = false;  // the CPU quota held the job back at least once
};

class JobCgroup final {
 public:
  // Creates "cordon-sandbox-<pid>-<n>" under the caller's cgroup(s) and applies the limits.
  [[nodiscard]] static Result<JobCgroup> Create(const CgroupLimits& limits);
  JobCgroup(JobCgroup&& other) noexcept;
  JobCgroup& operator=(JobCgroup&&) = delete;
  JobCgroup(const JobCgroup&) = delete;
  ~JobCgroup();

  // Moves the calling, single-threaded process into the job cgroup. v1: "0" to each hierarchy's
  // `tasks` migrates only the caller and skips the global threadgroup lock, whose RCU grace
  // period makes a cgroup.procs write cost 7-16 ms here (vs 0.02 ms). v2: "0" to cgroup.procs.
  [[nodiscard]] Status JoinSelf() const;
  // v2 only: an fd of the job cgroup directory for clone3(CLONE_INTO_CGROUP), which starts the
  // init inside the cgroup without a migration. -1 on v1 or without a cgroup.
  [[nodiscard]] int OpenV2Dir() const;
  [[nodiscard]] CgroupStats ReadStats() const;
  [[nodiscard]] const char* mode() const { return v2_ ? "v2" : (dirs_.empty() ? "none" : "v1"); }
  // The ceil(cpus) CPUs the job is pinned to (empty: no CPU limit, or it may use all the
  // caller's CPUs anyway), and whether a cpuset cgroup enforces them; where none could be
  // made the init pins itself with sched_setaffinity (best effort) before the trainer starts.
  [[nodiscard]] const std::vector<int>& cpus() const { return cpus_; }
  [[nodiscard]] bool cpuset_enforced() const { return cpuset_enforced_; }

 private:
  JobCgroup() = default;
  void KillAndRemove();

  bool v2_ = false;
  std::vector<std::string> dirs_;  // v2: one directory; v1: one per controller hierarchy
  std::vector<int> cpus_;
  bool cpuset_enforced_ = false;
};

// The calling thread's CPU affinity, ascending; PinTo sets it (false when refused).
[[nodiscard]] std::vector<int> AffinityCpus();
bool PinTo(const std::vector<int>& cpus);
// "0-3,8,10-11": the kernel's cpu list format.
[[nodiscard]] std::string CpuList(const std::vector<int>& cpus);

// What the host offers, for the probe: "v2: memory pids cpu" or "v1: ..." descriptions.
struct CgroupSupport {
  std::string v2_mount, v2_controllers, v2_own_path;
  std::vector<std::string> v1_controllers;  // controllers that have a v1 mount
};
[[nodiscard]] CgroupSupport DetectCgroups();
// The v2 directory the job cgroup would be created in (enable=false: only looks).
[[nodiscard]] Result<std::string> PickV2Parent(const CgroupSupport& support,
                                               const CgroupLimits& limits, bool enable);

}  // namespace cordon::sandbox
