// The Cordon configuration file (cordon.yaml), documented field by field in
// docs/CONFIG.md. Loaded as strictly as a job spec: unknown keys, wrong types,
// relative paths and out-of-range values are errors with FILE:LINE:COL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"
#include "cordon/yaml/strict_yaml.h"

namespace cordon::orchestrator {

inline constexpr std::string_view kDefaultConfigPath = "/etc/cordon/cordon.yaml";
inline constexpr std::string_view kConfigEnv = "CORDON_CONFIG";

struct Pkcs11Config {
  std::string module;       // path of the PKCS#11 module (.so), loaded with dlopen
  std::string token_label;  // the token that holds Cordon's KEKs
  std::string pin_file;     // file (0600) holding the user PIN; never the PIN itself
};

struct Config {
  std::string path;  // the file this was loaded from (absolute)

  std::string state_dir = "/var/lib/cordon";
  std::string spool_dir = "/var/spool/cordon";
  std::string audit_dir = "/var/log/cordon/audit";

  struct Kms {
    std::string local_keyring = "/etc/cordon/keys";
    std::optional<Pkcs11Config> pkcs11;
  } kms;

  struct Sandbox {
    std::uint32_t uid = 65534;  // never 0: the trainer runs unprivileged on the host too
    std::uint32_t gid = 65534;
    bool allow_swap = false;    // only matters on kernels without tmpfs noswap (< 6.4)
  } sandbox;

  struct Audit {
    std::uint64_t checkpoint_every = 1000;      // sign a checkpoint every N entries (1..1e9)
    std::uint32_t checkpoint_interval_s = 300;  // ... and after T seconds ("5m"; 1s..1d)
  } audit;

  struct Daemon {
    std::uint32_t max_concurrent_jobs = 2;
    std::string socket = "/run/cordon/cordon.sock";
    // Prometheus textfile (node_exporter's textfile collector; must end in .prom). Empty: none.
    std::string metrics_file;
    // Where jobs run (docs/SCALE-OUT.md): "local" (a `cordon run` child of
    // cordond) or "slurm" (one Slurm batch job per Cordon job).
    enum class Executor { kLocal, kSlurm } executor = Executor::kLocal;
  } daemon;

  // daemon.executor: slurm (docs/SCALE-OUT.md, docs/CONFIG.md).
  struct Slurm {
    std::string partition;                 // sbatch --partition ("" = the cluster's default)
    std::string account;                   // sbatch --account ("" = none)
    std::vector<std::string> sbatch_args;  // more sbatch options, each one argv word ("--qos=high")
    std::string cordon = "/usr/bin/cordon";  // the `cordon` binary on the nodes
    // The cordon.yaml `cordon run` reads on the nodes ("" = the same path as
    // cordond's): each node's own installation, its own audit_dir.
    std::string node_config;
    // Each job's spec copy, batch script and report: on storage every node
    // sees at the same path ("" = <state_dir>/slurm).
    std::string shared_dir;
    std::uint32_t poll_interval_ms = 2000;  // squeue / report polling (100ms..1h)
    std::uint32_t time_grace_s = 300;       // added to resources.timeout for --time (stage-in/out)
    // Who orders the queue: "cordon" (cordond's per-user fairness, at most
    // max_concurrent_jobs in Slurm) or "slurm" (every accepted job goes to
    // Slurm at once; its priority/fairshare plugins decide).
    enum class Scheduling { kCordon, kSlurm } scheduling = Scheduling::kCordon;
  } slurm;
};

struct ConfigParse {
  std::optional<Config> config;  // set only when diagnostics is empty
  std::vector<yaml::Diagnostic> diagnostics;
};

[[nodiscard]] ConfigParse ParseConfig(std::string_view text);

// --config FLAG if given, else $CORDON_CONFIG if set and non-empty, else the default.
[[nodiscard]] std::string ResolveConfigPath(const std::optional<std::string>& flag);

// Reads and parses `path`. On failure the error message holds one
// "FILE:LINE:COL: error: ..." line per problem.
[[nodiscard]] Result<Config> LoadConfig(const std::string& path);

// A configuration whose every path lies under `root` (used by `cordon init`).
[[nodiscard]] Config ConfigUnder(const std::string& root);

// The YAML text of `config`, with a comment on each field.
[[nodiscard]] std::string RenderConfig(const Config& config);

}  // namespace cordon::orchestrator
