// `cordon outputs extract`: restores a finished job's output tree from its
// sealed index, for an authorised consumer (the caller holds the KMS).
//
// index.sealed is unsealed in memory; each out-NNNNNN.sealed it lists is unsealed
// to DEST/<its relative path>. DEST is created fresh (0700; files 0600). The
// index is sealed, but every entry is checked before DEST is made (relative
// paths, no empty, '.' or '..' component, no control bytes, at most 64 levels;
// Cordon-made file names; members of the right type), and every directory and
// file is made with mkdirat/openat under DEST's fd with O_NOFOLLOW / O_EXCL, so
// nothing outside DEST is written and no link is followed. Each sealed file's
// sha256 must be the index's, its header's dataset its own Cordon-made name and
// its job the index's. Errors name Cordon-made files only, never a restored path.
#pragma once

#include <cstdint>
#include <string>

#include "cordon/error.h"
#include "cordon/sealed/sealed.h"

namespace cordon::runner {

struct Extracted {
  std::string job;  // the job id in the index's header
  std::uint64_t files = 0, bytes = 0, refused = 0;
  std::uint64_t superseded = 0;  // older live versions of a path, not restored
  bool live_index = false;       // the job has not finished: index.live.sealed was read
};

[[nodiscard]] Result<Extracted> ExtractOutputs(const std::string& job_dir, const std::string& dest,
                                               const sealed::KeyManagers& kms);

}  // namespace cordon::runner
