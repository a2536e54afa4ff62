// What the runner prepares for the trainer beside the spec: an OCI image's rootfs from the
// image cache, and the host's GPU devices and driver files. Private to the runner.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cordon/error.h"
#include "cordon/sandbox/sandbox.h"
#include "cordon/specs/spec.h"
#include "cordon/unique_fd.h"

namespace cordon::runner::internal {

struct PreparedOci {
  std::string manifest_digest;  // sha256:<hex>, checked against spec.trainer.image_digest
  std::string rootfs;           // <state_dir>/images/<hex>/rootfs
  UniqueFd rootfs_fd;           // O_PATH | O_DIRECTORY of it: what the sandbox binds as "/"
  UniqueFd cache_hold;          // the cache entry's shared lock: `cordon images prune` leaves it alone
  bool cached = false;
  std::uint64_t entries = 0, bytes = 0;
  std::vector<std::pair<std::string, std::string>> env;  // the image config's Env
  std::string working_dir;                               // recorded only
};

// Resolves spec.trainer.image (oci:) through `layout_fd` (opened as the submitter under
// cordond), refuses a manifest digest other than the pin, and unpacks it into the cache
// <state_dir>/images once. `submitter`: cordond's submitter (blobs must be readable by them);
// nullopt or 0 for root's own `cordon run`.
[[nodiscard]] Result<PreparedOci> PrepareOci(const specs::Trainer& trainer, int layout_fd, const std::string& state_dir,
                                             std::optional<uid_t> submitter);

// The first `gpus` NVIDIA devices (/dev/nvidia0..gpus-1, nvidiactl, nvidia-uvm,
// nvidia-uvm-tools where present) and the driver's user-space files found as
// nvidia-container-toolkit finds them (`ldconfig -p`: libcuda.so*, libnvidia-*.so*; nvidia-smi).
// Fails naming the first missing device. `dev` is "/dev" but for tests.
[[nodiscard]] Result<sandbox::GpuAccess> FindGpus(std::uint32_t gpus, const std::string& dev = "/dev");

// Parses `ldconfig -p` output: the native (x86-64 / AArch64) entries whose name starts with
// libcuda.so or libnvidia-, as {name, path}.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> ParseLdconfig(const std::string& text);

}  // namespace cordon::runner::internal
