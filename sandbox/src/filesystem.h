// Builds the trainer's filesystem inside the init's private mount namespace and pivots into it.
// Every function is one named set-up step; each returns an error that names the step.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "cordon/error.h"
#include "cordon/sandbox/sandbox.h"

namespace cordon::sandbox {

struct FsPlan {
  int image_fd = -1;         // O_PATH fd of the image directory, opened before any mount
  bool image_is_tree = false;  // image_fd is a detached mount (open_tree): moved, not bound
  std::uint64_t scratch_bytes = 0;
  bool allow_swap = false;
  uid_t uid = 65534;
  gid_t gid = 65534;
  bool image_is_rootfs = false;       // image_fd is the trainer's "/" (Policy::rootfs), not /job
  const GpuAccess* gpu = nullptr;     // devices and driver files to bind, or none
};

struct FsOutcome {
  bool scratch_noswap = false;
  bool dev_nodes_bound = false;  // mknod was refused: /dev's nodes are binds of the caller's
};

// Mounts a tmpfs root with /usr,/lib*,/bin,/sbin,/job (or the rootfs's top-level entries),
// /data,/out,/tmp,/proc,/dev,/etc (and /nvidia for GPUs) and pivot_roots into it; the old root
// is detached. Afterwards "/" is read-only.
[[nodiscard]] Result<FsOutcome> BuildRootAndPivot(const FsPlan& plan, std::string& failed_step);

// After stage_in: /data entries become root:gid, group-readable, and /data is remounted read-only.
[[nodiscard]] Status SealData(gid_t gid);

// After the trainer: detaches /data, /out, /tmp (the scratch tmpfs is freed with its last mount).
void DropScratch();

// True when /proc/swaps lists any active swap area, or cannot be read (fail safe).
[[nodiscard]] bool SwapActive();

}  // namespace cordon::sandbox
