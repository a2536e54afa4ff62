// Step 2's question to the dataset registry (datasets.h): may this sealed file
// be used, or is its version (or its whole dataset) quarantined?
//
// Asked by `cordon run` of its own registry before any key is touched, and by
// cordond of its registry when a job is submitted and again just before it is
// started or handed to Slurm: a job cordond runs anywhere is bound by the
// quarantines made there, whatever registry the node it runs on keeps
// (docs/INCIDENT-RESPONSE.md, docs/SCALE-OUT.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cordon/error.h"
#include "cordon/sealed/sealed.h"

namespace cordon::datasets {

struct QuarantineHit {
  std::string version;  // the quarantined version's id; "" when the whole dataset is
  std::string reason;   // as the quarantine recorded it
  // "dataset 'D' version sha256:… is quarantined (REASON); release it with
  // `cordon release D@sha256:…`" (without "@…" for a whole dataset).
  std::string message;
};

// The quarantine that forbids the sealed file open at `fd` (of dataset `dataset`,
// `plaintext_bytes` long in the clear, as its header and length give it), or nullopt.
//
// `sha256` ("sha256:<hex>") is what the caller knows of the file: its hash, or
// the pin the spec names (the runner refuses a file that is not its pin, so a
// pin naming a quarantined version is enough to refuse), or "". When it is ""
// and a quarantined version of the dataset could be this file — the same
// plaintext size, derived from the file's length as the registry recorded it
// for the version, or a version whose size the registry does not know — the
// file is hashed through `fd` (pread; the offset is not moved) and `sha256` set.
// A file of another length cannot be a quarantined version and is not hashed.
// A registry that cannot be read is an error: callers refuse the job (fail closed).
[[nodiscard]] Result<std::optional<QuarantineHit>> CheckQuarantine(const std::string& state_dir,
                                                                   const std::string& dataset, int fd,
                                                                   std::uint64_t plaintext_bytes,
                                                                   std::string& sha256);

// Quarantines version `sha256` of `dataset` (registering it, known by its hash, when the
// registry has never seen it) and records `rejected` and `quarantined` events with the job and
// reason: what a failed `expect:` does, by the runner on its host's registry and by cordond on
// its own for a job that ran on a Slurm node.
[[nodiscard]] Status QuarantineVersion(const std::string& state_dir, const std::string& dataset,
                                       const std::string& sha256, const std::string& path, const std::string& job,
                                       const std::string& reason);

}  // namespace cordon::datasets
