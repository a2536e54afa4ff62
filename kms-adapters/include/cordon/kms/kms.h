// The KMS adapter interface: key-encryption keys (KEKs) that wrap data keys.
//
// A KeyManager holds named, versioned KEKs for one backend (the local keyring,
// a PKCS#11 HSM; Vault transit and AWS KMS would be two more — docs/KMS.md).
// Callers see only names, versions and opaque wrapped blobs; KEK bytes never
// cross this interface.
//
// Contract of every adapter:
//  * Create makes version 1 of a new key; Rotate adds version N+1 and makes it
//    the one Wrap uses. Old versions keep unwrapping until the key is disabled.
//  * Disable is the incident-response switch: from then on Wrap and Unwrap
//    of every version are refused (Errc::kKeyDisabled). It is not reversible
//    through this interface.
//  * Wrap binds `context` (dataset, job) and the key's name and version into
//    the wrap as associated data: Unwrap with any other context fails.
//  * Errors are typed: kKeyUnknown (no such key / version), kKeyDisabled,
//    kWrongKey (the blob was made by other key material with the same name,
//    e.g. a re-created key or another host's keyring), kTampered (the blob or
//    the context was altered), kKmsUnavailable (module, token, PIN problems).
//  * A KeyManager is used from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"
#include "cordon/secret.h"

namespace cordon::kms {

inline constexpr std::size_t kDekBytes = 32;           // AES-256 data keys
inline constexpr std::size_t kMaxWrappedBytes = 1024;  // any adapter's blob fits

// Who the data key is for; bound into the wrap as associated data.
struct WrapContext {
  std::string dataset;  // the sealed file's dataset name
  std::string job;      // the job id for a job's outputs; empty otherwise
};

// The canonical associated-data encoding of a wrap, shared by adapters:
//   "cordon-wrap-v1" 0x00 | u8 len | adapter | u8 len | key name | u32 BE version
//   | u8 len | dataset | u8 len | job
// (the version big-endian; "key name" is the bare name, "datasets" for
// kms://local/datasets). A field over 255 bytes is refused (kInvalidArgument),
// never cut: names differing after byte 255 must not share an AAD.
[[nodiscard]] Result<std::vector<std::uint8_t>> WrapAad(std::string_view adapter, std::string_view key_name,
                                                        std::uint32_t version, const WrapContext& context);

struct WrappedKey {
  std::uint32_t version = 0;       // the KEK version that wrapped it
  std::vector<std::uint8_t> blob;  // opaque to callers, at most kMaxWrappedBytes
};

struct KeyInfo {
  std::string adapter;
  std::string name;
  std::vector<std::uint32_t> versions;  // ascending; the last one is current
  bool disabled = false;
  std::int64_t created_unix = 0;        // 0 when the backend does not record it
  [[nodiscard]] std::uint32_t current() const { return versions.empty() ? 0 : versions.back(); }
};

class KeyManager {
 public:
  virtual ~KeyManager() = default;

  [[nodiscard]] virtual std::string_view adapter() const = 0;
  [[nodiscard]] virtual Result<KeyInfo> Create(std::string_view name) = 0;
  [[nodiscard]] virtual Result<std::vector<KeyInfo>> List() = 0;
  [[nodiscard]] virtual Result<KeyInfo> Describe(std::string_view name) = 0;
  [[nodiscard]] virtual Result<KeyInfo> Rotate(std::string_view name) = 0;
  [[nodiscard]] virtual Status Disable(std::string_view name) = 0;
  // Retires one old version after a rotation (every file rewrapped off it):
  // Unwrap with it is refused (kKeyDisabled) from then on; the other versions
  // keep working. The current version cannot be retired (rotate first). Not
  // reversible through this interface. Adapters without it: kUnsupported.
  [[nodiscard]] virtual Status DisableVersion(std::string_view name, std::uint32_t version) {
    (void)name;
    (void)version;
    return Fail(Errc::kUnsupported, "this KMS adapter cannot disable a single key version");
  }

  // Wraps `dek` under the current version of `name`.
  [[nodiscard]] virtual Result<WrappedKey> Wrap(std::string_view name, const SecretBytes& dek,
                                                const WrapContext& context) = 0;
  // Unwraps a blob made by Wrap with the same name, version and context.
  [[nodiscard]] virtual Result<SecretBytes> Unwrap(std::string_view name, std::uint32_t version,
                                                   std::span<const std::uint8_t> blob,
                                                   const WrapContext& context) = 0;
};

// What the factory needs to reach each backend. The orchestrator fills it in
// from cordon.yaml (kms-adapters knows nothing of the config file).
struct Pkcs11Options {
  std::string module;       // path of the PKCS#11 module, loaded with dlopen
  std::string token_label;  // the token holding Cordon's KEKs
  std::string pin_file;     // a file (not group/world readable) with the user PIN
};

struct Options {
  std::string local_keyring;              // the local adapter's directory (0700)
  std::optional<Pkcs11Options> pkcs11;    // absent: the pkcs11 adapter is not configured
};

// Names of the adapters this build knows: "local", "pkcs11".
[[nodiscard]] std::vector<std::string_view> KnownAdapters();

// Builds the adapter named `adapter` (the <adapter> of kms://<adapter>/<name>).
// Unknown adapter: kKeyUnknown; configured but unusable: kKmsUnavailable.
[[nodiscard]] Result<std::unique_ptr<KeyManager>> OpenKeyManager(std::string_view adapter,
                                                                 const Options& options);

}  // namespace cordon::kms
