#include "cordon/error.h"

#include <cstring>

namespace cordon {

std::string_view ErrcName(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kPermissionDenied: return "permission_denied";
    case Errc::kIo: return "io";
    case Errc::kInvalidData: return "invalid_data";
    case Errc::kIntegrity: return "integrity";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kInternal: return "internal";
    case Errc::kWrongFormat: return "wrong_format";
    case Errc::kKeyUnknown: return "key_unknown";
    case Errc::kKeyDisabled: return "key_disabled";
    case Errc::kWrongKey: return "wrong_key";
    case Errc::kTampered: return "tampered";
    case Errc::kTruncated: return "truncated";
    case Errc::kTrailingData: return "trailing_data";
    case Errc::kKmsUnavailable: return "kms_unavailable";
  }
  return "unknown";
}

std::unexpected<Error> FailErrno(std::string_view what, int err) {
  Errc code = Errc::kIo;
  switch (err) {
    case ENOENT: code = Errc::kNotFound; break;
    case EEXIST: code = Errc::kAlreadyExists; break;
    case EACCES:
    case EPERM: code = Errc::kPermissionDenied; break;
    default: break;
  }
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return std::unexpected(Error{code, std::move(message)});
}

Error WithContext(Error error, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += error.message;
  error.message = std::move(message);
  return error;
}

}  // namespace cordon
