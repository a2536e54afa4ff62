// The `local` adapter: KEKs in a keyring directory on this host.
//
// Layout: KEYRING/ (0700, owned by the caller) holds one file per key,
// NAME.key (0600), written crash-safely (temp + fsync + rename + fsync dir):
//
//   cordon-local-keyring v1
//   name NAME
//   created UNIX-SECONDS
//   disabled 0|1
//   version N CREATED-UNIX KEY-ID(16 hex) KEK(64 hex)     (one line per version)
//
// Mutations (create, rotate, disable) hold an exclusive flock on
// KEYRING/.lock so that two concurrent rotations cannot lose a version.
// Wrap: AES-256-GCM under the KEK version with a random 96-bit nonce and
// kms::WrapAad as associated data; blob = key-id(8) | nonce(12) | ct(32) | tag(16).
// The key id tells "wrong key" (a re-created key, another host's keyring)
// apart from "tampered" (blob or context altered).
//
// Security: the KEKs are plaintext on disk, protected by file modes only;
// anyone who can read KEYRING as its owner (root) has every KEK. Use the
// pkcs11 adapter where that is not acceptable (docs/KMS.md).
#pragma once

#include <memory>
#include <string>

#include "cordon/kms/kms.h"

namespace cordon::kms {

// Opens (creating if missing, with mode 0700) the keyring at `dir`. Refuses a
// keyring that is group/world accessible or owned by another user.
[[nodiscard]] Result<std::unique_ptr<KeyManager>> OpenLocalKeyring(const std::string& dir);

}  // namespace cordon::kms
