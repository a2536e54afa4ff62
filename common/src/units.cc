#include "cordon/units.h"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace cordon {
namespace {

constexpr std::uint64_t kKi = 1024;

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

// Longest suffixes first so "Mi" wins over "M".
constexpr std::array<Unit, 8> kSizeUnits{{
    {"Ki", kKi}, {"Mi", kKi * kKi}, {"Gi", kKi * kKi * kKi}, {"Ti", kKi * kKi * kKi * kKi},
    {"k", 1000}, {"M", 1000'000}, {"G", 1000'000'000}, {"T", 1000'000'000'000},
}};

// Parses a run of decimal digits at the start of text; returns digits consumed (0 = none).
std::size_t ParseDigits(std::string_view text, std::uint64_t& value) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) return std::string_view::npos;
  if (ec != std::errc()) return 0;
  return static_cast<std::size_t>(ptr - text.data());
}

bool MulOverflows(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b;
}

}  // namespace

Result<std::uint64_t> ParseSize(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  std::uint64_t value = 0;
  const std::size_t used = ParseDigits(text, value);
  if (used == std::string_view::npos) return Fail(Errc::kInvalidArgument, shown + " is too large");
  if (used == 0) {
    return Fail(Errc::kInvalidArgument,
                shown + " is not a size: expected bytes with an optional suffix Ki, Mi, Gi, Ti "
                        "(or k, M, G, T), e.g. 512Mi");
  }
  const std::string_view suffix = text.substr(used);
  std::uint64_t factor = 1;
  if (!suffix.empty()) {
    factor = 0;
    for (const Unit& unit : kSizeUnits) {
      if (suffix == unit.suffix) factor = unit.factor;
    }
    if (factor == 0) {
      return Fail(Errc::kInvalidArgument, shown + " has an unknown size suffix '" +
                                              std::string(suffix) +
                                              "': use Ki, Mi, Gi, Ti (or k, M, G, T)");
    }
  }
  if (MulOverflows(value, factor)) return Fail(Errc::kInvalidArgument, shown + " is too large");
  return value * factor;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  const auto bad = [&] {
    return Fail(Errc::kInvalidArgument,
                shown + " is not a duration: expected a number with a unit ms, s, m, h or d, "
                        "e.g. 90s, 30m, 1h30m");
  };
  if (text.empty()) return bad();
  std::uint64_t total_ms = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::uint64_t value = 0;
    const std::size_t used = ParseDigits(rest, value);
    if (used == std::string_view::npos) return Fail(Errc::kInvalidArgument, shown + " is too long");
    if (used == 0) return bad();
    rest.remove_prefix(used);
    std::uint64_t factor = 0;
    if (rest.starts_with("ms")) {
      factor = 1;
      rest.remove_prefix(2);
    } else if (!rest.empty()) {
      switch (rest.front()) {
        case 's': factor = 1000; break;
        case 'm': factor = 60'000; break;
        case 'h': factor = 3'600'000; break;
        case 'd': factor = 86'400'000; break;
        default: break;
      }
      if (factor != 0) rest.remove_prefix(1);
    }
    if (factor == 0) return bad();
    if (MulOverflows(value, factor) ||
        total_ms > std::numeric_limits<std::int64_t>::max() - value * factor) {
      return Fail(Errc::kInvalidArgument, shown + " is too long");
    }
    total_ms += value * factor;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(total_ms));
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes == 0) return "0";
  constexpr std::array<std::pair<std::string_view, std::uint64_t>, 4> kBinary{{
      {"Ti", kKi * kKi * kKi * kKi}, {"Gi", kKi * kKi * kKi}, {"Mi", kKi * kKi}, {"Ki", kKi}}};
  for (const auto& [suffix, factor] : kBinary) {
    if (bytes % factor == 0) return std::to_string(bytes / factor) + std::string(suffix);
  }
  return std::to_string(bytes);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  auto ms = static_cast<std::uint64_t>(duration.count());
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  std::uint64_t s = ms / 1000;
  std::string out;
  constexpr std::array<std::pair<char, std::uint64_t>, 4> kParts{
      {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}};
  for (const auto& [unit, factor] : kParts) {
    if (s >= factor) {
      out += std::to_string(s / factor);
      out += unit;
      s %= factor;
    }
  }
  return out;
}

}  // namespace cordon
