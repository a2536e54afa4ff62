// The `pkcs11` adapter: KEKs that live in a PKCS#11 token (an HSM, or
// SoftHSM2 in tests) and never leave it.
//
//  * The module is dlopen'ed from Pkcs11Options::module; the token is found
//    by label; the session logs in as CKU_USER with the PIN read from
//    Pkcs11Options::pin_file (which must not be group/world accessible; the
//    PIN is held in SecretBytes and never logged).
//  * Each key version is one AES-256 secret-key object generated inside the
//    token: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true; CKA_EXTRACTABLE,
//    CKA_WRAP, CKA_UNWRAP false; CKA_LABEL "<name>/v<version>"; CKA_ID a random
//    8-byte key id (tells a re-created key apart: Errc::kWrongKey).
//  * Wrap/unwrap are C_Encrypt/C_Decrypt with CKM_AES_GCM inside the token,
//    a random 96-bit IV and kms::WrapAad as the GCM AAD; the blob is
//    key-id(8) | iv(12) | ciphertext(32) | tag(16). (SoftHSM2 2.6.1 supports
//    CKM_AES_GCM for C_Encrypt; CKM_AES_KEY_WRAP_PAD has no AAD, so the
//    context could not be bound without a second layer.)
//  * Disable sets CKA_ENCRYPT and CKA_DECRYPT false on every version, so the
//    token itself refuses to use the key from then on.
// Errors: a missing module, a missing token, a wrong PIN are kKmsUnavailable
// with the module path / token label in the message; a missing key is
// kKeyUnknown.
#pragma once

#include <memory>

#include "cordon/kms/kms.h"

namespace cordon::kms {

[[nodiscard]] Result<std::unique_ptr<KeyManager>> OpenPkcs11Hsm(const Pkcs11Options& options);

}  // namespace cordon::kms
