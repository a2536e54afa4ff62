// The tamper-evident audit log: the one writer every Cordon process uses.
//
// Format, canonical form and key schedule: docs/AUDIT-FORMAT.md. In short:
// JSON Lines segments audit-<first seq>.jsonl in the audit directory; every
// entry carries seq, time, actor, action, job, outcome, details, prev (hash of
// the previous entry), hash (SHA-256 of the entry's canonical form) and mac
// (HMAC-SHA256 under a forward-secure key that evolves after every entry and
// whose old values are overwritten on disk). The entries are also the leaves
// of an RFC 6962 Merkle tree whose stored hashes are appended to
// <dir>/tree.hashes; Ed25519 checkpoints (C2SP tlog-checkpoint) over
// {origin, size, Merkle root, time} are appended to <dir>/checkpoints.
// Proofs, tiles and the witness: audit_tlog.h.
//
// Guarantees of Append / Begin / Finish:
//   * durable before return: the entry is written with O_APPEND and
//     fdatasync'd, and the evolved MAC key is written and fdatasync'd, before
//     the call returns. Concurrent callers in one process share one write and
//     one fdatasync (group commit); each still returns only after its own
//     entry is durable.
//   * serialised across processes by flock(2) on <dir>/audit.lock, so the CLI,
//     the runner and the daemon may all hold an AuditLog on the same directory.
//   * a torn last line left by a crash is moved aside intact (torn-*.bin) and
//     a `log.recovered` entry records it; nothing is silently dropped. A write
//     that fails (ENOSPC, EIO) is cut back before the error is returned: no
//     torn line is left behind.
//   * details must never hold plaintext data or key material. A guard refuses
//     secret-looking member names (key, secret, password, pin, token, dek, kek,
//     plaintext, ...), floats, strings over 1 KiB and entries over 16 KiB; it
//     is a guard, not a proof: callers must still log references, not values.
//
// Not thread-safe across fork(): open a new AuditLog in the child.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cordon/error.h"

namespace cordon::audit {

// Who caused an action. By default the calling process (getuid, its user
// name, getpid, /proc/self/comm); the daemon passes the peer it acts for.
struct Actor {
  std::uint32_t uid = 0;
  std::string user;
  std::int64_t pid = 0;
  std::string process;
};

struct Event {
  std::string action;              // dotted, lower case: "job.accepted", "key.unwrapped"
  std::string job;                 // empty: no job (the member is then omitted)
  std::string outcome = "ok";      // [a-z_]+: ok, failed, denied, error, intent, ...
  nlohmann::json details = nlohmann::json::object();  // an object; see the guard above
  std::optional<Actor> actor;      // unset: the calling process
};

// When the overwritten MAC key reaches the disk. Both values now behave the
// same: the evolved key and the batch's entries share one fdatasync (the
// journal in mac.state, docs/AUDIT-FORMAT.md), so the old key is erased on
// the disk before Append returns. kPipelined (a background fdatasync of the
// key, which left the old key on the disk for about one fdatasync) is kept so
// that existing callers compile; it no longer weakens erasure.
enum class KeyErasure { kSynchronous, kPipelined };

struct Options {
  std::string dir;                               // the config's audit_dir
  std::uint64_t checkpoint_every = 1000;         // sign a checkpoint every N entries
  std::chrono::seconds checkpoint_interval{300}; // ... and when T has passed (checked on append;
                                                 // a long-lived process also calls Checkpoint() on a timer)
  std::uint64_t segment_max_bytes = 64ull << 20; // start a new segment beyond this size
  KeyErasure key_erasure = KeyErasure::kSynchronous;
};

// A write-ahead record: the `intent` entry of an action, durable before the
// action runs. Finish() appends its outcome. An intent without an outcome in
// the log means the process died during the action; `cordon audit show` marks it.
struct Intent {
  std::uint64_t seq = 0;
  std::string action;
  std::string job;
};

class AuditLog final {
 public:
  // Opens the log in options.dir, created by CreateAuditKeys (`cordon init`).
  // Recovers a torn tail left by a crash before returning.
  [[nodiscard]] static Result<std::unique_ptr<AuditLog>> Open(Options options);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Appends one entry; returns its seq once it is durable.
  [[nodiscard]] Result<std::uint64_t> Append(const Event& event);
  // Appends `event` with outcome "intent" (write-ahead) and returns the handle.
  [[nodiscard]] Result<Intent> Begin(Event event);
  // Appends the outcome of `intent`: same action and job, details gain "intent_seq".
  [[nodiscard]] Result<std::uint64_t> Finish(const Intent& intent, std::string outcome,
                                             nlohmann::json details = nlohmann::json::object());
  // Signs and stores a checkpoint of the current head (the Merkle root of every
  // entry now in the log) and records it in the MAC state (restarting the
  // interval). Call on clean shutdown and from a timer in long-lived processes
  // (cordond: every checkpoint_interval). Returns the signed note.
  [[nodiscard]] Result<std::string> Checkpoint();

 private:
  class Impl;
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct KeysReport {
  bool created = false;           // false: the log's keys existed and were left untouched
  std::string verifier_key_path;  // the file the operator must move off the host
};

// `cordon init`: creates the MAC seed k0, the Ed25519 checkpoint key, the
// state and lock files in `dir` (which must exist, 0700), writes the verifier
// key (k0 + the checkpoint public key, 0400) to `verifier_key_path`, and
// appends the first entry, `log.created`. Refuses to touch an existing log.
[[nodiscard]] Result<KeysReport> CreateAuditKeys(const std::string& dir,
                                                 const std::string& verifier_key_path);

}  // namespace cordon::audit
