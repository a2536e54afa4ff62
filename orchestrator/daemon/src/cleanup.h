// What a runner that died leaves behind: sealed-but-unfinished outputs
// (".NAME.partial", never renamed into place) and an empty job directory.
// cordond removes them when a job ends without a report (the runner crashed,
// or the daemon found it interrupted at start-up). The job directory is found
// as everything else a submitter names: output.path opened as the submitter,
// the job's directory inside it without following symlinks, and only a
// root-owned directory (the runner made it) is touched.
#pragma once

#include <cstddef>
#include <string>

#include "cordon/error.h"
#include "user_open.h"

namespace cordon::daemon {

struct Cleaned {
  std::size_t partials_removed = 0;
  bool directory_removed = false;
};

// `output_path`: the spec's output.path; `job_id`: the directory inside it.
[[nodiscard]] Result<Cleaned> CleanAbandonedJobDir(const Identity& submitter, const std::string& output_path,
                                                   const std::string& job_id);

}  // namespace cordon::daemon
