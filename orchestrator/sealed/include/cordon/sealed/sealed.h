// Sealed files: how Cordon keeps data at rest (format: docs/SEALED-FORMAT.md).
//
// A sealed file is a header followed by AES-256-GCM chunks. The header names
// the KMS key (kms://adapter/name + version) that wraps a fresh 256-bit data
// key (DEK), the dataset (and job) the file belongs to, the chunk size, a salt
// and a key-commitment value, and ends with an HMAC over all of it. From the
// DEK and salt HKDF derives the payload key, the header MAC key and the
// commitment; the dataset, job and chunk size are part of the HKDF info, so a
// header cannot be moved to other chunks, a file cannot be renamed into
// another dataset, and a file decrypts under exactly one DEK.
//
// Guarantees of this API:
//  * Plaintext reaches a sink only after its chunk authenticated, in order.
//    The *File functions go further: OUT appears (atomically) only after the
//    whole file verified; on failure nothing is left behind (O_TMPFILE where
//    the file system has it, else a temp file that is unlinked).
//  * Memory is bounded (two lanes x a batch of chunks); two threads share
//    the crypto for large inputs.
//  * Data keys live in SecretBytes (mlock'ed, cleansed).
// Errors use cordon::Errc: kWrongFormat (not a sealed file), kUnsupported
// (format version), kKeyUnknown, kKeyDisabled, kWrongKey, kTampered (header),
// kIntegrity (chunk N failed authentication; N in the message), kTruncated,
// kTrailingData, kKmsUnavailable, kIo.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "cordon/unique_fd.h"
#include "cordon/key_ref.h"
#include "cordon/kms/kms.h"
#include "cordon/secret.h"

namespace cordon::sealed {

inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::uint32_t kDefaultChunkBytes = 1u << 20;
inline constexpr std::uint32_t kMinChunkBytes = 16;
inline constexpr std::uint32_t kMaxChunkBytes = 64u << 20;
inline constexpr std::size_t kTagBytes = 16;
inline constexpr std::size_t kMaxHeaderBytes = 4096;
inline constexpr std::size_t kMaxDatasetBytes = 255;

// The parsed, not yet authenticated header.
struct Header {
  std::uint16_t format_version = kFormatVersion;
  std::uint32_t chunk_bytes = kDefaultChunkBytes;
  std::array<std::uint8_t, 32> salt{};
  std::array<std::uint8_t, 32> commitment{};
  KeyRef key;
  std::uint32_t kek_version = 0;
  std::string dataset;
  std::string job;
  std::vector<std::uint8_t> wrapped_dek;
  std::array<std::uint8_t, 32> mac{};
  std::size_t header_bytes = 0;  // offset of the first chunk
};

// Parses the header at the start of `bytes` (which may hold more). Checks
// structure and limits only: nothing here is authenticated yet. Never reads
// beyond `bytes`; a short input is kTruncated, a wrong magic kWrongFormat, an
// unknown version kUnsupported. (The fuzz target's entry point.)
[[nodiscard]] Result<Header> ParseHeader(std::span<const std::uint8_t> bytes);

// The dataset-name rule: 1..255 bytes, no control characters, no '/'.
[[nodiscard]] Status CheckDatasetName(std::string_view name);

// What `cordon inspect` shows: the header plus sizes derived from the file's
// length (plaintext_bytes is authenticated only by a full unseal).
struct SealedInfo {
  Header header;
  std::uint64_t sealed_bytes = 0;
  std::uint64_t chunks = 0;
  std::uint64_t plaintext_bytes = 0;
};

// Reads and parses the header of the regular file open at `fd` (offset 0, via
// pread) and derives the sizes. No key is needed; nothing is decrypted.
[[nodiscard]] Result<SealedInfo> OpenSealed(int fd);

// Progress: bytes of plaintext done so far, and the total (0 when unknown).
using Progress = std::function<void(std::uint64_t done, std::uint64_t total)>;
// Receives verified plaintext, in order. An error stops the unseal.
using ChunkSink = std::function<Status(std::span<const std::uint8_t> plaintext)>;

struct SealOptions {
  KeyRef key;
  std::string dataset;
  std::string job;  // empty for operator-sealed inputs
  std::uint32_t chunk_bytes = kDefaultChunkBytes;
  Progress progress;
};

// What a seal / unseal / rewrap did: enough for an audit-log entry.
struct Report {
  KeyRef key;
  std::uint32_t kek_version = 0;
  std::string dataset;
  std::string job;
  std::uint32_t chunk_bytes = 0;
  std::uint64_t plaintext_bytes = 0;
  std::uint64_t sealed_bytes = 0;
  std::uint64_t chunks = 0;
  std::string sha256;  // "sha256:<hex>" of the sealed file, when the operation produced one
  std::optional<KeyRef> previous_key;        // rewrap: the key before
  std::uint32_t previous_kek_version = 0;    // rewrap: the version before
};

// Seals everything read from `in_fd` (a file, pipe or socket) onto `out_fd`
// (written sequentially). A regular file is read with pread from its current
// offset to its end (the fd's offset does not move). `kms` must be the
// adapter of options.key. The report's sha256 is that of the bytes written.
[[nodiscard]] Result<Report> SealStream(int in_fd, int out_fd, kms::KeyManager& kms,
                                        const SealOptions& options);

// Unwraps the header's DEK through `kms` (the adapter of header.key), checks
// the key commitment and the header MAC. For a runner that unwraps in one
// process and decrypts in another (the sandbox), this is the first half.
[[nodiscard]] Result<SecretBytes> UnwrapDataKey(const Header& header, kms::KeyManager& kms);

// Decrypts the chunks of the sealed file open at `in_fd` (positioned anywhere:
// reads start at header.header_bytes with pread) under an already-unwrapped
// `dek`, verifying the commitment and header MAC first. Each verified chunk's
// plaintext goes to `sink` in order; the last chunk's final flag is checked,
// so a sink that saw no error saw the whole file.
[[nodiscard]] Result<Report> UnsealWithKey(int in_fd, const Header& header, const SecretBytes& dek,
                                           const ChunkSink& sink, const Progress& progress = {});

// ---- File-level operations (what the CLI runs) ----

struct KeyManagers {
  // Returns the adapter for `adapter`, opening it on first use.
  std::function<Result<kms::KeyManager*>(std::string_view adapter)> get;
};

// Opens each adapter from `options` on first use and keeps it for later calls.
[[nodiscard]] KeyManagers CachedKeyManagers(kms::Options options);

// Seals IN ("-" = stdin) to OUT: written to an unnamed temp file beside OUT,
// fsync'ed and linked in place only when complete. OUT must not exist.
[[nodiscard]] Result<Report> SealFile(const std::string& in, const std::string& out,
                                      const KeyManagers& kms, const SealOptions& options);

enum class Replace { kRefuse, kReplace };

// Unseals IN to OUT. OUT = "-": the whole file is verified first (nothing is
// written), then decrypted again to stdout chunk by chunk, each chunk verified
// before it is written; only a concurrent change of IN between the two passes
// can then stop the output early (exit non-zero after a verified prefix).
// Otherwise OUT appears atomically only after the last chunk verified.
[[nodiscard]] Result<Report> UnsealFile(const std::string& in, const std::string& out,
                                        const KeyManagers& kms, Replace replace,
                                        const Progress& progress = {});

// Re-wraps FILE's DEK under `new_key` (default: the same key) at its newest
// version. Only the header changes; the chunks are copied byte for byte
// (copy_file_range), and the file is replaced atomically (temp + fsync +
// rename + fsync dir), keeping its mode.
[[nodiscard]] Result<Report> RewrapFile(const std::string& file, const KeyManagers& kms,
                                        const std::optional<KeyRef>& new_key);

// Rewrap in batches (`cordon rewrap --all`): PrepareRewrap writes FILE's
// rewrapped copy to a temp file beside it (same owner, mode and chunks; not
// synced, FILE untouched); CommitRewraps then makes a batch take effect with
// one syncfs per file system (the temps' data on disk), a rename of each temp
// over its file, and one fsync per directory (the renames on disk). A crash at
// any point leaves each file either as it was or rewrapped, never damaged; a
// leftover temp is ".NAME.cordon-tmp.XXXXXXXXXXXXXXXX" beside NAME.
struct PendingRewrap {
  std::string file;
  std::string temp;
  Report report;  // sha256: of the rewrapped file
};
[[nodiscard]] Result<PendingRewrap> PrepareRewrap(const std::string& file, const KeyManagers& kms,
                                                  const std::optional<KeyRef>& new_key);
// One status per file, in order; a failed file keeps its old content and its temp is removed.
[[nodiscard]] std::vector<Status> CommitRewraps(std::span<const PendingRewrap> batch);

// Rewrap in place (`cordon rewrap --all`, docs/THREAT-MODEL.md): when the
// rewrapped header has the same length as the old one (the same adapter and
// key name: the usual case after a rotation), only the header bytes at the
// start of the file change, in one pwrite of at most 4 KiB (one page: a killed
// process leaves the old header or the new one, never a mix; both are valid,
// the DEK and chunks being the same). The caller journals `before` and `after`
// (synced) before WriteHeaders, so that after a power loss RestoreHeader can
// put back a header torn on disk. Readers take a shared flock while they read
// a header (OpenSealed); the write holds an exclusive one.
struct HeaderRewrite {
  std::string file;
  UniqueFd fd;                        // open read-write
  std::vector<std::uint8_t> before;   // the header on disk now
  std::vector<std::uint8_t> after;    // the rewrapped header, of the same length
  Report report;                      // sha256: empty (see Sha256Fd)
  std::uint64_t dev = 0, ino = 0;     // the file's identity (journaled for RestoreHeader)
};
// Errc::kUnsupported: the new header's length differs (rewrap a copy instead).
[[nodiscard]] Result<HeaderRewrite> PrepareHeaderRewrite(const std::string& file, const KeyManagers& kms,
                                                        const std::optional<KeyRef>& new_key);
// Writes each header, then makes the batch durable with one syncfs per file
// system. One status per rewrite, in order; a failed one is left as it was.
[[nodiscard]] std::vector<Status> WriteHeaders(std::span<const HeaderRewrite> batch);
// After a crash: FILE's first before.size() bytes are `before` or `after`
// (nothing to do; returns whether it is `after`), or else a torn write, and
// `before` is written back and synced (returns false). Errc::kNotFound, and
// nothing written, when FILE is gone or is no longer the file (dev, ino).
[[nodiscard]] Result<bool> RestoreHeader(const std::string& file, std::uint64_t dev, std::uint64_t ino,
                                         std::span<const std::uint8_t> before, std::span<const std::uint8_t> after);

// "sha256:<64 hex>" of the file at `path`.
[[nodiscard]] Result<std::string> Sha256File(const std::string& path);
// The same for the regular file open at `fd`, read with pread from offset 0
// (the fd's offset is left alone, so another reader can share it).
[[nodiscard]] Result<std::string> Sha256Fd(int fd);
// The same for bytes in memory.
[[nodiscard]] std::string Sha256Bytes(std::string_view bytes);

}  // namespace cordon::sealed
