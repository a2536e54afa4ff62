// Sizes and durations as users write them in specs, config and flags.
//
//   size:     "1073741824", "512Mi", "2Gi", "1Ti" (binary), "500M", "2G" (decimal)
//   duration: "90s", "30m", "2h", "1d", "1h30m", "500ms"
//
// Parsing is strict: no spaces, no signs, no fractions, overflow is an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cordon/error.h"

namespace cordon {

[[nodiscard]] Result<std::uint64_t> ParseSize(std::string_view text);
[[nodiscard]] Result<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The shortest exact form: 1073741824 -> "1Gi", 1500 -> "1500".
[[nodiscard]] std::string FormatSize(std::uint64_t bytes);
// The shortest exact form: 5400s -> "1h30m", 1500ms -> "1500ms".
[[nodiscard]] std::string FormatDuration(std::chrono::milliseconds duration);

}  // namespace cordon
