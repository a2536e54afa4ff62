// Internals of the audit log shared by the writer, the verifier and the tests.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"
#include "cordon/audit/audit.h"

namespace cordon::audit::internal {

using Bytes32 = std::array<std::uint8_t, 32>;

// ---- files in the audit directory -------------------------------------------
inline constexpr const char* kLockFile = "audit.lock";
inline constexpr const char* kStateFile = "mac.state";          // current MAC key (0600)
inline constexpr const char* kSigningKeyFile = "checkpoint.key"; // Ed25519 seed (0600)
inline constexpr const char* kIdentityFile = "log.identity";     // origin + public key
inline constexpr const char* kCheckpointsFile = "checkpoints";   // signed notes, appended
inline constexpr std::size_t kMaxLineBytes = 16 * 1024;          // an entry, newline included
inline constexpr std::size_t kMaxStringBytes = 1024;
inline constexpr int kMaxDepth = 8;

[[nodiscard]] std::string SegmentName(std::uint64_t first_seq);  // audit-%020llu.jsonl
struct Segment {
  std::uint64_t first_seq;
  std::string path;
};
// Segments sorted by first seq; a name that is not audit-<20 digits>.jsonl is ignored.
[[nodiscard]] Result<std::vector<Segment>> ListSegments(const std::string& dir);

// ---- crypto --------------------------------------------------------------------
[[nodiscard]] Bytes32 Sha256(std::string_view data);
[[nodiscard]] Bytes32 Sha256Parts(std::initializer_list<std::string_view> parts);
// The same for data that is no secret (records, tree nodes): the hash state
// is not cleansed afterwards, which the verifier saves on every entry.
[[nodiscard]] Bytes32 Sha256PublicParts(std::initializer_list<std::string_view> parts);
// HMAC-SHA256 with a 32-byte key (RFC 2104 over SHA-256).
[[nodiscard]] Bytes32 HmacSha256(const Bytes32& key, const Bytes32& message);
// k_{i+1} = SHA-256("cordon-audit-key-evolve-v1" || 0x00 || k_i)
[[nodiscard]] Bytes32 EvolveKey(const Bytes32& key);
[[nodiscard]] std::string Hex(const std::uint8_t* data, std::size_t size);
[[nodiscard]] inline std::string Hex(const Bytes32& b) { return Hex(b.data(), b.size()); }
[[nodiscard]] std::optional<Bytes32> Unhex32(std::string_view hex);
[[nodiscard]] std::string Base64(const std::uint8_t* data, std::size_t size);
[[nodiscard]] std::optional<std::string> Unbase64(std::string_view text);
[[nodiscard]] Status RandomBytes(std::uint8_t* out, std::size_t size);
// Constant-time comparison.
[[nodiscard]] bool Equal32(const Bytes32& a, const Bytes32& b);
void Cleanse(void* p, std::size_t n);

[[nodiscard]] Result<Bytes32> Ed25519PublicFromSeed(const Bytes32& seed);
[[nodiscard]] Result<std::string> Ed25519Sign(const Bytes32& seed, std::string_view message);
[[nodiscard]] bool Ed25519Verify(const Bytes32& public_key, std::string_view message,
                                 std::string_view signature);

// ---- entries -------------------------------------------------------------------
// The canonical serialisation (docs/AUDIT-FORMAT.md): JSON, members sorted by
// the bytes of their UTF-8 names, no whitespace, integers only, strings
// escaped minimally (\" \\ \b \f \n \r \t, other controls \u00xx).
[[nodiscard]] Result<std::string> Canonical(const nlohmann::json& value);

// Checks an event before it is logged (names, outcome, the details guard).
[[nodiscard]] Status ValidateEvent(const Event& event);
[[nodiscard]] Actor CurrentActor();
[[nodiscard]] std::string FormatTime(std::int64_t unix_ns);  // 2026-11-27T07:00:00.000000001Z
[[nodiscard]] std::int64_t NowNs();
// Refuses impossible dates (Feb 30, Apr 31, Feb 29 outside a leap year).
[[nodiscard]] std::optional<std::int64_t> ParseTime(std::string_view rfc3339);
[[nodiscard]] unsigned DaysInMonth(unsigned year, unsigned month);  // 0 for a month outside 1..12

struct Sealed {
  std::string line;  // canonical JSON + '\n'
  Bytes32 hash;
};
// Builds the line for entry `seq`: hash over the canonical form without
// hash/mac, mac = HMAC(key, hash).
[[nodiscard]] Result<Sealed> SealEntry(const Event& event, const Actor& actor, std::uint64_t seq,
                                       const std::string& time, const Bytes32& prev,
                                       const Bytes32& key);

struct ParsedEntry {
  nlohmann::json json;
  std::uint64_t seq = 0;
  Bytes32 hash{};      // as stored
  Bytes32 computed{};  // recomputed from the canonical form
  Bytes32 prev{};
  Bytes32 mac{};
};
// Strict parse of one line (without its '\n'): must be the canonical form of
// an object with exactly the entry members and their types. ScanEntryLine is
// the fast single-pass validator the verifier and writer use (json left
// null); ParseEntryLine also fills json; ParseEntryLineReference is the
// obviously-correct nlohmann-json version (parse, re-serialise, compare) that
// the fuzz target checks ScanEntryLine against.
[[nodiscard]] Result<ParsedEntry> ScanEntryLine(std::string_view line);
[[nodiscard]] Result<ParsedEntry> ParseEntryLine(std::string_view line);
[[nodiscard]] Result<ParsedEntry> ParseEntryLineReference(std::string_view line);

// ---- MAC state -------------------------------------------------------------------
struct MacState {
  std::uint64_t seq = 0;  // the next entry to be written has this seq and uses `key`
  Bytes32 key{};
  std::uint64_t checkpoint_size = 0;     // size of the last checkpoint signed
  std::int64_t checkpoint_time_ns = 0;   // when
  std::uint64_t tree_synced = 0;         // records whose tree hashes are known durable
  // The journal after the record in mac.state: the lines of entries
  // journal_seq .. seq-1, journal_bytes bytes; every entry before journal_seq
  // is durable in the segments. (Absent in records from before the journal:
  // journal_seq = seq, journal_bytes = 0.)
  std::uint64_t journal_seq = 0;
  std::uint64_t journal_bytes = 0;
};
inline constexpr std::size_t kStateRecordBytes = 512;  // one sector: written in place
[[nodiscard]] std::string EncodeState(const MacState& state);
[[nodiscard]] Result<MacState> DecodeState(std::string_view record);

// ---- identity, verifier key, checkpoints ------------------------------------------------
struct Identity {
  std::string origin;
  Bytes32 public_key{};
};
[[nodiscard]] std::string EncodeIdentity(const Identity& id);
[[nodiscard]] Result<Identity> DecodeIdentity(std::string_view text);
// The signed-note verifier key string: <name>+<keyhash hex>+<base64(0x01||pub)>
[[nodiscard]] std::string NoteVerifierKey(const Identity& id);
[[nodiscard]] std::array<std::uint8_t, 4> NoteKeyHash(const Identity& id);

struct VerifierKey {
  Identity identity;
  Bytes32 k0{};
};
[[nodiscard]] std::string EncodeVerifierKey(const VerifierKey& key);
[[nodiscard]] Result<VerifierKey> DecodeVerifierKey(std::string_view text);

struct CheckpointBody {
  std::string origin;
  std::uint64_t size = 0;
  Bytes32 head{};
  std::string time;
};
[[nodiscard]] Result<std::string> SignCheckpoint(const CheckpointBody& body, const Identity& id,
                                                 const Bytes32& seed);
struct ParsedCheckpoint {
  CheckpointBody body;
  std::string text;
  std::string body_text;                // the signed body (up to the blank line)
  std::vector<std::string> signatures;  // its signature lines
  std::uint64_t line = 0;  // first line in its file
  bool signature_ok = false;
  std::string problem;     // why the signature or the form is bad
};
// Splits a file of signed notes (separated by one blank line) and checks each
// against `id`. A note that cannot be parsed is returned with problem set.
[[nodiscard]] std::vector<ParsedCheckpoint> ParseCheckpoints(std::string_view text, const Identity& id);
// A log's signed-note verifier key string (type 0x01); the name is the origin.
[[nodiscard]] Result<Identity> ParseLogVerifierKey(std::string_view vkey);

// ---- witnesses: C2SP tlog-cosignature, Ed25519 (type 0x04, cosignature/v1) ---------------
struct WitnessIdentity {
  std::string name;
  Bytes32 public_key{};
};
// SHA-256(name || "\n" || 0x04 || public key)[:4]
[[nodiscard]] std::array<std::uint8_t, 4> CosignatureKeyId(const WitnessIdentity& id);
// <name>+<key id hex>+<base64(0x04 || public key)>
[[nodiscard]] std::string WitnessVerifierKeyString(const WitnessIdentity& id);
[[nodiscard]] Result<WitnessIdentity> ParseWitnessVerifierKey(std::string_view vkey);
// The signature line "— <name> base64(key id || u64 BE timestamp || Ed25519 sig)\n" over
// "cosignature/v1\ntime <timestamp>\n" || body.
[[nodiscard]] Result<std::string> Cosign(std::string_view body, const WitnessIdentity& id, const Bytes32& seed,
                                         std::uint64_t timestamp);
// Whether one of `signatures` is a valid cosignature of `body` by `id`.
[[nodiscard]] bool HasCosignature(std::string_view body, const std::vector<std::string>& signatures,
                                  const WitnessIdentity& id);

}  // namespace cordon::audit::internal
