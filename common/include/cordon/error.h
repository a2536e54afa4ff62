// One error type for the whole code base: std::expected<T, Error>.
//
// An Error carries a coarse code (what kind of failure, which decides an exit
// status) and a message a user can act on: which file, which line, which key,
// which chunk. Library exceptions (yaml-cpp, Boost) are converted into an
// Error at the boundary where they enter Cordon code.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>

namespace cordon {

enum class Errc {
  kInvalidArgument,  // the caller passed something malformed (usage, spec, config)
  kNotFound,         // a named file, key or job does not exist
  kAlreadyExists,    // refusing to overwrite
  kPermissionDenied, // policy or file mode forbids it
  kIo,               // the OS failed an operation (errno in the message)
  kInvalidData,      // a file we read is not what it claims to be
  kIntegrity,        // authentication / hash / signature check failed
  kUnsupported,      // valid but not supported here (version, host feature)
  kInternal,         // a bug in Cordon
  // Key management and sealed data (each maps to its own exit status in the CLI):
  kWrongFormat,      // the input is not the kind of file expected at all (bad magic)
  kKeyUnknown,       // the KMS has no such key, or no such key version
  kKeyDisabled,      // the key exists but is disabled (unwrap refused)
  kWrongKey,         // the data was protected by different key material
  kTampered,         // an authenticated header / metadata failed verification
  kTruncated,        // the data ends before its authenticated end
  kTrailingData,     // the data continues after its authenticated end
  kKmsUnavailable,   // the KMS cannot be used (module missing, wrong PIN, no token)
};

[[nodiscard]] std::string_view ErrcName(Errc code);

struct Error {
  Errc code;
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

[[nodiscard]] inline std::unexpected<Error> Fail(Errc code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

// "WHAT: strerror(err)" with Errc chosen from err (ENOENT -> kNotFound, ...).
[[nodiscard]] std::unexpected<Error> FailErrno(std::string_view what, int err = errno);

// Prefixes context onto an error's message: "CONTEXT: message".
[[nodiscard]] Error WithContext(Error error, std::string_view context);

}  // namespace cordon
