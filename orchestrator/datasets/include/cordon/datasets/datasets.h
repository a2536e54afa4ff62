// The dataset version registry (docs/INCIDENT-RESPONSE.md).
//
// A version of a dataset is identified by the sha256 of its sealed file as
// `cordon seal` wrote it. For each version the registry keeps who sealed it
// and when, where, under which key, its plaintext row count and header, a
// per-column summary (expectations.h: counts, null rate, min/max/mean,
// distinct count) and a content digest: HMAC-SHA256 of the plaintext under
// the registry's hash key, so equal content is recognisable across re-seals
// while the digest reveals nothing about the plaintext to anyone without
// that key (docs/THREAT-MODEL.md). The hash key is 32 random bytes kept only
// sealed (hash-key.sealed, a sealed file like any other: its data key is
// wrapped by the KMS; `cordon rewrap --all` rewraps it too).
//
// Storage: <state_dir>/datasets/ (0700, root's): one JSON document per
// dataset, replaced with WriteFileAtomic under an exclusive flock on
// registry.lock, so a reader sees the old or the new document, never a torn
// one, and two writers never lose each other's change.
//
// A version's quarantine, the dataset's current and last known good version,
// and every incident step on it (with the caller's uid) are kept here; the
// audit log has the same steps, hash-chained.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"
#include "cordon/datasets/expectations.h"
#include "cordon/sealed/sealed.h"
#include "cordon/secret.h"

namespace cordon::datasets {

struct Caller {
  std::uint32_t uid = 0;
  std::string user;
};

struct Version {
  std::string id;                     // "sha256:<hex>" of the sealed file when registered
  std::vector<std::string> aliases;   // the file's later sha256s (after `cordon rewrap`)
  std::string path;                   // absolute, where it was sealed (or last installed)
  Caller sealed_by;
  std::int64_t sealed_at = 0;         // unix seconds
  std::string key_ref;
  std::uint32_t key_version = 0;
  std::uint64_t plaintext_bytes = 0;
  std::optional<std::uint64_t> rows;  // data rows; unset when the plaintext is not CSV
  std::vector<std::string> header;
  std::string content_digest;         // "hmac-sha256:<hex>"
  std::optional<orchestrator::Summaries> summaries;
  bool quarantined = false;
  std::string quarantine_reason;

  [[nodiscard]] bool Matches(std::string_view sha256) const;  // the id or an alias
};

struct Event {
  std::int64_t time = 0;
  std::string action;   // sealed, quarantined, released, mark_good, restored, rejected, rewrapped
  std::string version;  // empty: the whole dataset
  Caller by;
  std::string reason;
  std::string job;
};

struct Dataset {
  std::string name;
  std::vector<Version> versions;  // in registration order
  std::string current;            // a version id; "" when none
  std::string last_good;          // a version id; "" when none marked
  bool quarantined = false;       // every version, until released
  std::string quarantine_reason;
  std::vector<Event> events;

  [[nodiscard]] Version* Find(std::string_view sha256);
  [[nodiscard]] const Version* Find(std::string_view sha256) const;
  // A full id, an alias, or a unique prefix of at least 12 hex digits (with or without "sha256:").
  [[nodiscard]] Result<Version*> Resolve(std::string_view spec);
  [[nodiscard]] bool IsQuarantined(const Version& v) const { return quarantined || v.quarantined; }
  [[nodiscard]] nlohmann::json ToJson() const;
  [[nodiscard]] static Result<Dataset> FromJson(const nlohmann::json& j);
};

inline constexpr std::size_t kMaxEvents = 10000;  // oldest dropped past this (the audit log keeps all)

class Registry final {
 public:
  // Opens (creating 0700 when missing) <state_dir>/datasets.
  [[nodiscard]] static Result<Registry> Open(const std::string& state_dir);

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] Result<std::vector<std::string>> Names() const;
  // nullopt: no such dataset.
  [[nodiscard]] Result<std::optional<Dataset>> Load(std::string_view name) const;
  // Read-modify-write under the registry lock; `change` sees a fresh Dataset
  // (name set, nothing else) when none exists. Nothing is written when it fails.
  [[nodiscard]] Result<Dataset> Update(std::string_view name, const std::function<Status(Dataset&)>& change);

  // The registry's hash key (created, sealed under `key`, when missing).
  [[nodiscard]] Result<SecretBytes> HashKey(const sealed::KeyManagers& kms, const KeyRef& key_for_new);
  [[nodiscard]] std::string HashKeyPath() const { return dir_ + "/hash-key.sealed"; }

 private:
  explicit Registry(std::string dir) : dir_(std::move(dir)) {}
  [[nodiscard]] std::string PathOf(std::string_view name) const;
  std::string dir_;
};

// What one pass over a sealed version's plaintext yields (nothing is written
// anywhere: the plaintext exists only chunk by chunk in this process's memory).
struct Profile {
  std::uint64_t plaintext_bytes = 0;
  std::string content_digest;        // "hmac-sha256:<hex>"
  std::optional<std::uint64_t> rows;
  std::vector<std::string> header;
  std::optional<orchestrator::Summaries> summaries;
  std::string csv_error;             // why rows/summaries are absent
  std::vector<std::uint64_t> row_hashes;  // keyed (HMAC-SHA256, 64 bits), sorted; only when asked
};

// Decrypts the sealed file open at `fd` (unwrapping through `kms`) and profiles it.
[[nodiscard]] Result<Profile> ProfileSealed(int fd, const sealed::KeyManagers& kms, const SecretBytes& hash_key,
                                            bool row_hashes);

// A version entry for a freshly sealed file: its identity, header facts and profile.
[[nodiscard]] Version VersionFrom(const std::string& sha256, const std::string& path, const sealed::Header& header,
                                  const Profile& profile, const Caller& by, std::int64_t now);

// The caller as the kernel reports it (getuid and its account name), or `uid` when given.
[[nodiscard]] Caller CallerFor(std::optional<uid_t> uid = std::nullopt);

}  // namespace cordon::datasets
