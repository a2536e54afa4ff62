// What the scratch tmpfs holds: sampled while the trainer runs (its peak), measured once when
// every process of the job is dead (its last state, split by /data, /out and /tmp), so that a
// job that failed because the scratch filled up, or because its pages pushed the job's memory
// cgroup to its limit, can be told apart and named with the numbers.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "cordon/unique_fd.h"

namespace cordon::sandbox {

class ScratchMeter final {
 public:
  // `dir` is any directory on the scratch tmpfs (opened O_PATH before the trainer starts).
  explicit ScratchMeter(UniqueFd dir) : dir_(std::move(dir)) {}
  ScratchMeter() = default;
  // One fstatfs: updates the peak and the lowest free space seen.
  void Sample();
  [[nodiscard]] std::uint64_t size() const { return size_; }
  [[nodiscard]] std::uint64_t peak() const { return peak_; }
  [[nodiscard]] std::uint64_t last() const { return last_; }
  // Free space fell under min(1 MiB, 1% of the size) at some sample.
  [[nodiscard]] bool full() const;

 private:
  UniqueFd dir_;
  std::uint64_t size_ = 0, peak_ = 0, last_ = 0, min_free_ = UINT64_MAX;
};

// Allocated bytes (st_blocks) under `path`, not following links, at most max_entries entries
// (then the sum so far). Opens what it reads with the file-system identity uid/gid (the
// trainer's: the init needs no CAP_DAC_READ_SEARCH for the trainer's private directories).
[[nodiscard]] std::uint64_t AllocatedBytes(const char* path, uid_t uid, gid_t gid,
                                           std::size_t max_entries = 100'000);

}  // namespace cordon::sandbox
