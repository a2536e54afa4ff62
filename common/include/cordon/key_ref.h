// A reference to a KMS key: kms://<adapter>/<name>.
//   adapter: ^[a-z][a-z0-9-]{0,31}$      (local, pkcs11, vault, aws-kms, ...)
//   name:    ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
// The reference names a key, never a version: the version is recorded where
// the key is used (a sealed file's header) so rotation needs no spec change.
#pragma once

#include <string>
#include <string_view>

#include "cordon/error.h"

namespace cordon {

struct KeyRef {
  std::string adapter;
  std::string name;
  [[nodiscard]] std::string ToString() const { return "kms://" + adapter + "/" + name; }
  friend bool operator==(const KeyRef&, const KeyRef&) = default;
};

[[nodiscard]] Result<KeyRef> ParseKeyRef(std::string_view text);
[[nodiscard]] bool IsValidKeyName(std::string_view name);

}  // namespace cordon
