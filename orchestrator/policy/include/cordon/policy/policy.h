// cordond's access policy (policy.yaml beside cordon.yaml; docs/DAEMON.md).
// Deny by default: a caller matched by no `users` entry may do nothing but
// ask for the daemon's health; a submitter may see, wait on, cancel and read
// the logs of their own jobs only; admins may do all of that for every job.
// Identities come from the kernel (SO_PEERCRED, or the spool file's owner),
// never from a request. User and group names are resolved to ids when the
// policy is loaded, so a rename of an account cannot widen a grant later.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"
#include "cordon/specs/spec.h"
#include "cordon/yaml/strict_yaml.h"

namespace cordon::policy {

struct Principals {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
};

struct Grant {
  Principals who;
  std::vector<std::string> datasets;  // dataset names or absolute sealed paths; "*" = any
  std::vector<std::string> keys;      // kms:// refs for inputs and outputs; "*" = any
  // Places, not just names: a spec's output.path and trainer.image must equal
  // or lie beneath one of these absolute directories; "*" = any. Absent = none.
  std::vector<std::string> outputs;
  std::vector<std::string> images;
  std::uint64_t max_memory = 0;       // ceiling on memory + scratch (both RAM); 0 = none
  double max_cpus = 0;
  std::chrono::milliseconds max_timeout{0};
  std::uint32_t max_queued = 100;     // queued + running jobs of one user
  std::uint32_t max_gpus = 0;         // resources.gpus ceiling; 0 = no GPU for this grant
};

struct Policy {
  std::string path;
  Principals admins;
  std::vector<Grant> grants;
};

struct PolicyParse {
  std::optional<Policy> policy;
  std::vector<yaml::Diagnostic> diagnostics;
};
[[nodiscard]] PolicyParse ParsePolicy(std::string_view text);
// Reads and parses; errors hold one "FILE:LINE:COL: error: ..." line each.
[[nodiscard]] Result<Policy> LoadPolicy(const std::string& path);
// "<dir of config>/policy.yaml", the config's symbolic links resolved.
[[nodiscard]] std::string PolicyPathFor(const std::string& config_path);
// The policy `cordon init` writes: `uid` may submit anything and administer.
[[nodiscard]] std::string RenderInitialPolicy(uid_t uid);

// A caller as the kernel reported it. Groups are the account's (getgrouplist)
// plus the primary gid; a uid with no account has only its gid.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
};

[[nodiscard]] bool IsAdmin(const Policy& policy, const Caller& caller);
// The first grant that names the caller, or nullptr (deny).
[[nodiscard]] const Grant* GrantFor(const Policy& policy, const Caller& caller);

// What the daemon read from each input's sealed header (not yet authenticated:
// the runner authenticates it; the pin in the spec binds the bytes).
struct InputFacts {
  std::string path;
  std::string dataset;
  std::string key;  // kms:// ref that wraps its data key
};

// kPermissionDenied with a reason naming the first refused item and the grant
// field that would have allowed it (datasets, keys, outputs, images, max_*).
[[nodiscard]] Status CheckJob(const Grant& grant, const specs::TrainingJob& job,
                              const std::vector<InputFacts>& inputs);

}  // namespace cordon::policy
