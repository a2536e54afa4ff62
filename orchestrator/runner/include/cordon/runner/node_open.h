// `cordon run --as-submitter UID` (docs/SCALE-OUT.md): on a Slurm node no file
// descriptor can arrive from cordond, so the runner opens what the spec names
// itself — with the submitter's rights, through the same code cordond uses
// (user_open.h: a child that has become the submitter, no symbolic link
// followed), never as root — and checks that what it opened is what cordond
// approved: each input's sealed header names the dataset and key cordond's
// policy decided on. The image is checked as cordond checks it. A mismatch or a
// path the submitter cannot open refuses the job before any key is touched.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/config/config.h"
#include "cordon/specs/spec.h"
#include "cordon/unique_fd.h"

namespace cordon::runner {

// What cordond approved, per spec input name.
struct Approval {
  std::map<std::string, std::string> datasets;  // input name -> the sealed header's dataset
  std::map<std::string, std::string> keys;      // input name -> its key reference (kms://...)
};

struct SubmitterFds {
  std::map<std::string, UniqueFd> inputs;  // by spec input name
  UniqueFd output;                          // output.path, created as the submitter if missing
  UniqueFd image;                           // trainer.image
};

enum class NodeRefusal { kInput, kSetup };

struct NodeOpenError {
  NodeRefusal kind = NodeRefusal::kSetup;
  std::string message;
};

// Must run as root; refuses uid 0 as a submitter only through the approval
// (root's own jobs open as root, like cordond's). Every spec input must have an
// approval and every approval an input.
[[nodiscard]] std::expected<SubmitterFds, NodeOpenError> OpenAsSubmitter(const orchestrator::Config& config,
                                                                         const specs::TrainingJob& job, uid_t submitter,
                                                                         const Approval& approval);

}  // namespace cordon::runner
