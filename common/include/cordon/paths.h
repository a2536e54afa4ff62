// Checks on host paths named by untrusted input (specs, config, flags).
//
// Cordon only accepts paths that mean exactly what they say: absolute, already
// normalised (no ".", "..", "//" or trailing "/"), no NUL or control bytes, and
// not inside the kernel's pseudo file systems (/proc, /sys, /dev) where a bind
// or a write could reach the host's kernel state.
#pragma once

#include <string>
#include <string_view>

#include "cordon/error.h"

namespace cordon {

inline constexpr std::size_t kMaxPathBytes = 4096;
inline constexpr std::size_t kMaxPathComponentBytes = 255;

// Absolute and normalised; "/" itself is refused (nothing Cordon takes may be the root).
[[nodiscard]] Status CheckNormalizedAbsolutePath(std::string_view path);

// CheckNormalizedAbsolutePath plus: not /proc, /sys, /dev or anything under them.
[[nodiscard]] Status CheckHostPath(std::string_view path);

// True when `path` equals `dir` or lies under it (both normalised absolute paths).
[[nodiscard]] bool PathIsWithin(std::string_view path, std::string_view dir);

}  // namespace cordon
