// The audit log as a transparency log (docs/AUDIT-FORMAT.md, "Merkle tree"):
// inclusion and consistency proofs from the stored tree hashes, a C2SP
// tlog-tiles export, and the witness (`cordon audit witness`) that keeps the
// last checkpoint it saw per log, checks that the log only grew, and cosigns
// (C2SP tlog-cosignature, Ed25519, cosignature/v1).
//
// Everything but the witness reads the audit directory only (under a shared
// flock on audit.lock). Hashes are base64 of 32 raw bytes, as in checkpoints.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::audit {

struct InclusionProof {
  std::uint64_t index = 0;
  std::uint64_t size = 0;
  std::string root;                // MTH of the tree of `size`
  std::string leaf;                // SHA-256(0x00 || entry line)
  std::vector<std::string> proof;  // RFC 6962 audit path, bottom to top
};
// Entry `index` in the tree of `size` records (unset: the log as it is now).
[[nodiscard]] Result<InclusionProof> ProveInclusion(const std::string& dir, std::uint64_t index,
                                                    std::optional<std::uint64_t> size);

struct ConsistencyProof {
  std::uint64_t old_size = 0;
  std::uint64_t new_size = 0;
  std::string old_root;
  std::string new_root;
  std::vector<std::string> proof;  // RFC 6962 PROOF(old, D[new])
};
// From the tree of `old_size` (>= 1) to `new_size` (unset: now).
[[nodiscard]] Result<ConsistencyProof> ProveConsistency(const std::string& dir, std::uint64_t old_size,
                                                        std::optional<std::uint64_t> new_size);

struct TilesReport {
  std::uint64_t size = 0;     // the tree size exported: the latest checkpoint's
  std::uint64_t tiles = 0;    // hash tiles written
  std::uint64_t bundles = 0;  // entry bundles written
};
// Writes out_dir/checkpoint (the latest signed checkpoint) and the tree of its
// size as C2SP tlog-tiles: out_dir/tile/<L>/<N>[.p/<W>] (height 8) and the
// entry bundles out_dir/tile/entries/<N>[.p/<W>]. Refuses when the stored
// hashes do not give the checkpoint's root.
[[nodiscard]] Result<TilesReport> ExportTiles(const std::string& dir, const std::string& out_dir);

// ---- the witness ---------------------------------------------------------------
// Creates a witness key (Ed25519 seed, 0600, refusing to overwrite) named
// `name` (a schema-less URL: "witness.example.com/w1") and returns its
// verifier key: <name>+<key id hex>+<base64(0x04 || public key)>.
[[nodiscard]] Result<std::string> CreateWitnessKey(const std::string& path, const std::string& name);
// The verifier key of an existing witness key file.
[[nodiscard]] Result<std::string> WitnessVerifierKey(const std::string& path);

struct WitnessOptions {
  std::string log_key;        // the log's verifier key string, or a file holding one (log.identity works)
  std::string state_dir;      // where the witness keeps the last checkpoint per origin
  std::string witness_key;    // the witness key file
  std::string checkpoint;     // the new checkpoint (signed note text)
  std::optional<std::string> proof;  // consistency proof text (`cordon audit consistency --json`)
};
enum class WitnessRefusal { kBadSignature, kRollback, kFork, kBadProof, kProofNeeded };
[[nodiscard]] const char* WitnessRefusalName(WitnessRefusal r);
struct WitnessResult {
  std::optional<WitnessRefusal> refused;  // unset: cosigned
  std::string message;                    // what was checked, or why it was refused
  std::string cosignature;                // "— <witness name> <base64>\n"
  std::uint64_t size = 0;
  std::uint64_t previous_size = 0;        // 0: the first checkpoint seen for this origin
};
// Errors (Result failure) are for unreadable inputs; a refusal is a result.
[[nodiscard]] Result<WitnessResult> Witness(const WitnessOptions& options);

}  // namespace cordon::audit
