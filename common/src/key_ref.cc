#include "cordon/key_ref.h"

#include <algorithm>

namespace cordon {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

bool IsValidAdapter(std::string_view adapter) {
  return !adapter.empty() && adapter.size() <= 32 && adapter.front() >= 'a' &&
         adapter.front() <= 'z' &&
         std::all_of(adapter.begin(), adapter.end(), [](char c) { return IsLowerAlnum(c) || c == '-'; });
}

}  // namespace

bool IsValidKeyName(std::string_view name) {
  return !name.empty() && name.size() <= 128 && IsAlnum(name.front()) &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

Result<KeyRef> ParseKeyRef(std::string_view text) {
  constexpr std::string_view kScheme = "kms://";
  const std::string shown = "'" + std::string(text) + "'";
  if (!text.starts_with(kScheme)) {
    return Fail(Errc::kInvalidArgument,
                shown + " is not a key reference: expected kms://<adapter>/<key-name>, "
                        "e.g. kms://local/models");
  }
  text.remove_prefix(kScheme.size());
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Fail(Errc::kInvalidArgument, shown + " has no key name: expected kms://<adapter>/<key-name>");
  }
  KeyRef ref{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  if (!IsValidAdapter(ref.adapter)) {
    return Fail(Errc::kInvalidArgument,
                shown + ": adapter '" + ref.adapter + "' must match ^[a-z][a-z0-9-]{0,31}$");
  }
  if (!IsValidKeyName(ref.name)) {
    return Fail(Errc::kInvalidArgument,
                shown + ": key name '" + ref.name + "' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$");
  }
  return ref;
}

}  // namespace cordon
