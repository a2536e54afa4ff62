// The sandbox init: PID 1 of the job's pid namespace. It builds the filesystem, runs stage_in,
// forks the trainer, counts seccomp violations, enforces the timeout, reaps everything, kills
// everything left when the trainer exits, runs stage_out and reports one InitReport.
#pragma once

#include "cordon/sandbox/sandbox.h"

namespace cordon::sandbox {

class JobCgroup;

struct InitChannels {
  int sync_read = -1;     // one byte from the caller: it is alive and waiting (EOF: it died)
  const JobCgroup* cgroup = nullptr;  // the init joins it itself unless already_in_cgroup
  bool already_in_cgroup = false;     // v2 clone3(CLONE_INTO_CGROUP)
  int report_write = -1;  // InitReport records to the caller
  bool memory_cgroup = false;
  // policy.image_fd's mount cloned by the caller (open_tree(OPEN_TREE_CLONE)) in its own mount
  // namespace, or -1: a mount of another namespace cannot be bound from here, a detached tree
  // can be moved in.
  int image_tree = -1;
};

// Sets lo up in the caller's network namespace through an AF_UNIX socket's ioctl (the interface
// ioctls reach the device layer from any family). 0 or the errno (EPERM: no CAP_NET_ADMIN over
// that namespace). Used by the init and by `--probe`.
[[nodiscard]] int SetLoopbackUp();

// Never returns: exits the init process.
[[noreturn]] void InitMain(const Policy& policy, const InitChannels& channels);

}  // namespace cordon::sandbox
