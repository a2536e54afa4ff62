#include "cordon/paths.h"

#include <array>

namespace cordon {

Status CheckNormalizedAbsolutePath(std::string_view path) {
  if (path.empty()) return Fail(Errc::kInvalidArgument, "path is empty");
  if (path.size() > kMaxPathBytes) {
    return Fail(Errc::kInvalidArgument,
                "path is longer than " + std::to_string(kMaxPathBytes) + " bytes");
  }
  for (const char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Fail(Errc::kInvalidArgument, "path contains a control character");
    }
  }
  if (path.front() != '/') {
    return Fail(Errc::kInvalidArgument,
                "path '" + std::string(path) + "' is relative: an absolute path is required");
  }
  if (path == "/") return Fail(Errc::kInvalidArgument, "path '/' (the host root) is not allowed");
  if (path.back() == '/') {
    return Fail(Errc::kInvalidArgument,
                "path '" + std::string(path) + "' is not normalised: remove the trailing '/'");
  }
  std::string_view rest = path.substr(1);
  for (;;) {
    const std::size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    const auto not_normal = [&](std::string_view what) {
      return Fail(Errc::kInvalidArgument,
                  "path '" + std::string(path) + "' is not normalised: " + std::string(what));
    };
    if (part.empty()) return not_normal("it contains '//'");
    if (part == ".") return not_normal("it contains a '.' component");
    if (part == "..") return not_normal("it contains a '..' component");
    if (part.size() > kMaxPathComponentBytes) {
      return Fail(Errc::kInvalidArgument, "path '" + std::string(path) +
                                              "' has a component longer than " +
                                              std::to_string(kMaxPathComponentBytes) + " bytes");
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return {};
}

bool PathIsWithin(std::string_view path, std::string_view dir) {
  if (!path.starts_with(dir)) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

Status CheckHostPath(std::string_view path) {
  if (auto ok = CheckNormalizedAbsolutePath(path); !ok) return ok;
  constexpr std::array<std::string_view, 3> kPseudo{"/proc", "/sys", "/dev"};
  for (const std::string_view pseudo : kPseudo) {
    if (PathIsWithin(path, pseudo)) {
      return Fail(Errc::kInvalidArgument, "path '" + std::string(path) + "' is inside " +
                                              std::string(pseudo) +
                                              ", which Cordon never binds or writes");
    }
  }
  return {};
}

}  // namespace cordon
