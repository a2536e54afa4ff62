// Reading the audit log: the verifier (`cordon audit verify`), the timeline
// reader (`cordon audit show`) and the latest checkpoint
// (`cordon audit checkpoint`). Everything here is read-only.
//
// What Verify proves, and with what:
//   * without a verifier key: the hash chain (every entry's hash, prev links,
//     consecutive seqs across segments) and every checkpoint signature against
//     the public key stored on the host. Root on the host can rewrite all of
//     that consistently; the report says "MACs not checked".
//   * with the verifier key (k0 and the checkpoint public key, kept off the
//     host): also every MAC. Root at time T cannot produce MACs for entries
//     before T, because those keys were erased.
//   * with a checkpoint saved off the host (--checkpoint): also that the log
//     still holds that checkpoint's head (catches tail truncation/rollback).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"

namespace cordon::audit {

enum class Tamper {
  kModified,          // an entry's bytes, hash or canonical form changed
  kDeleted,           // seqs missing
  kReordered,         // entries out of order
  kInserted,          // an entry that is not part of the chain
  kMacMismatch,       // the MAC does not verify under the forward-secure key
  kBadSignature,      // a checkpoint signature, origin or key does not verify
  kTruncated,         // the log ends before a checkpoint's size (or forks from it)
};
[[nodiscard]] const char* TamperName(Tamper t);

struct VerifyOptions {
  std::string dir;
  std::optional<std::string> verifier_key_file;
  std::optional<std::string> checkpoint_file;  // a checkpoint kept elsewhere
  // Witness verifier keys (name+id+base64(0x04||pub), or files holding one)
  // and how many of them must have cosigned every note in checkpoint_file.
  std::vector<std::string> witness_keys;
  std::uint64_t witnesses_required = 0;
  // Threads that prepare entries (scan, hashes, MACs), the one that walks the
  // chain included (it prepares the next block once it has walked one); the
  // MAC key chain runs on one more. 0: one per core.
  unsigned threads = 0;
};

struct Finding {
  Tamper tamper;
  std::string file;        // the segment or checkpoint file
  std::uint64_t line = 0;  // 1-based; 0 when the finding has no line (a missing file)
  std::optional<std::uint64_t> seq;
  std::string detail;
};

struct VerifyReport {
  std::uint64_t entries = 0;
  std::string head;             // hex hash of the last entry ("" for an empty log)
  std::string root;             // base64 Merkle root (RFC 6962) of the entries verified
  std::uint64_t bytes = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t witnesses = 0;  // witness cosignatures verified on checkpoint_file
  bool macs_checked = false;
  std::optional<Finding> failure;  // the first problem found; unset: the log verifies
};

// Errors (Result failure) are for a verification that could not run: a
// missing directory or an unreadable verifier key. Tampering is a report.
[[nodiscard]] Result<VerifyReport> Verify(const VerifyOptions& options);

struct ShowFilter {
  std::optional<std::string> job;
  std::optional<std::string> since;   // RFC 3339 (UTC, 'Z') or a duration ago ("30m")
  std::optional<std::string> action_glob;
};

// Every entry matching the filter, in log order (not verified: run Verify).
[[nodiscard]] Result<std::vector<nlohmann::json>> ReadEntries(const std::string& dir,
                                                              const ShowFilter& filter);
// One human-readable timeline line for an entry.
[[nodiscard]] std::string FormatTimelineLine(const nlohmann::json& entry);

// The text of the latest signed checkpoint (a signed note).
[[nodiscard]] Result<std::string> LatestCheckpoint(const std::string& dir);

}  // namespace cordon::audit
