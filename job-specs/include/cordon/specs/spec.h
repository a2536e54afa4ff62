// The TrainingJob spec (apiVersion cordon/v1): the typed form of a job-spec
// YAML file, the one place where the schema in job-specs/SCHEMA.md is mapped
// onto a struct. Every value here has been validated; defaults are filled in.
//
// Security consequences a caller relies on:
//   - every path is absolute, normalised and outside /proc, /sys and /dev;
//   - input names are safe single path components (no '/', not '.' or '..');
//   - env names match ^[A-Z_][A-Z0-9_]*$ and never start with CORDON_ (reserved);
//   - network is always "none" in v1.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cordon/key_ref.h"
#include "cordon/specs/expect.h"
#include "cordon/yaml/strict_yaml.h"

namespace cordon::specs {

inline constexpr std::string_view kApiVersion = "cordon/v1";
inline constexpr std::string_view kKind = "TrainingJob";

enum class ImageKind {
  kDirectory,  // `image: /srv/trainers/x`: a host directory, bound read-only at /job
  kOciLayout,  // `image: oci:/srv/images/x[:TAG]`: an OCI image layout; its rootfs becomes "/"
};

struct Trainer {
  ImageKind image_kind = ImageKind::kDirectory;
  std::string image;                        // the host directory: the image, or the OCI layout
  std::string image_ref;                    // OCI only: the TAG ("" = the layout's only manifest)
  std::optional<std::string> image_digest;  // OCI only: "sha256:<64 hex>" pin of the manifest
  std::vector<std::string> command;         // argv; command[0] is an absolute path
  std::map<std::string, std::string> env;   // extra environment for the trainer
};

struct Input {
  std::string name;                    // the plaintext appears at /data/<name>
  std::string path;                    // the sealed file on the host
  std::optional<std::string> sha256;   // pin of the sealed file's bytes, 64 lowercase hex
  std::vector<std::string> columns;    // CSV projection; empty = every column
  std::optional<Expectations> expect;  // data checks before the trainer (expect.h)
};

struct Output {
  static constexpr std::uint64_t kDefaultMaxFiles = 10000;
  static constexpr std::uint64_t kMaxMaxFiles = 1000000;

  std::string path;  // host directory that receives sealed outputs
  KeyRef key;        // the KMS key that wraps every output's data key
  // Stage-out caps: files past max_files, or past max_bytes of plaintext in
  // total, are refused (counted, never sealed). max_bytes unset: the scratch size.
  std::uint64_t max_files = kDefaultMaxFiles;
  std::optional<std::uint64_t> max_bytes;
  // Live outputs: /out-relative directory prefixes ("checkpoints/", always ending in '/') whose
  // files are sealed while the trainer runs, each time one is closed after a write or renamed in.
  static constexpr std::size_t kMaxLiveDirs = 16;
  std::vector<std::string> live;
};

struct Resources {
  static constexpr std::uint64_t kDefaultMemory = 1ull << 30;   // 1Gi
  static constexpr std::uint32_t kDefaultPids = 256;
  static constexpr double kDefaultCpus = 1.0;
  static constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::hours(1);
  static constexpr std::uint64_t kDefaultScratch = 1ull << 30;  // 1Gi

  std::uint64_t memory_bytes = kDefaultMemory;
  std::uint32_t pids = kDefaultPids;
  double cpus = kDefaultCpus;
  std::chrono::milliseconds timeout = kDefaultTimeout;
  std::uint64_t scratch_bytes = kDefaultScratch;
  std::uint32_t gpus = 0;  // NVIDIA GPUs (/dev/nvidia0..gpus-1); the policy's max_gpus caps it
};

struct TrainingJob {
  std::string name;
  std::map<std::string, std::string> labels;
  Trainer trainer;
  std::vector<Input> inputs;
  Output output;
  Resources resources;
  std::string network = "none";
  // The metric names the trainer may report ($CORDON_METRICS): identifiers
  // ^[A-Za-z_][A-Za-z0-9_]{0,63}$, unique, at most 64. Any other key is dropped
  // and counted; none declared = no metric passes.
  std::vector<std::string> metrics;
};

inline constexpr std::size_t kMaxMetrics = 64;

// ^[A-Za-z_][A-Za-z0-9_]{0,63}$: a declared metric name.
[[nodiscard]] bool IsMetricName(std::string_view name);

// spec.trainer.image as written: the path, or "oci:PATH[:TAG]".
[[nodiscard]] std::string ImageReference(const Trainer& trainer);

struct ParseResult {
  std::optional<TrainingJob> job;            // set only when diagnostics is empty
  std::vector<yaml::Diagnostic> diagnostics; // every problem found, in file order
};

// Parses and validates spec text. Never throws on bad input.
[[nodiscard]] ParseResult ParseSpec(std::string_view text);

// Reads FILE (refusing anything over 1 MiB or not a regular file) and parses it.
// A file that cannot be read yields one diagnostic at 1:1.
[[nodiscard]] ParseResult LoadSpecFile(const std::string& path);

// The normalised spec (defaults filled in) as JSON, in the schema's own shape;
// sizes and durations are given both as written-out strings and as numbers.
[[nodiscard]] nlohmann::json ToJson(const TrainingJob& job);

}  // namespace cordon::specs
