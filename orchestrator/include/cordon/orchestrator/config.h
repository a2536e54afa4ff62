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
#include "cordon/specs/strict_yaml.h"

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
  } daemon;
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
