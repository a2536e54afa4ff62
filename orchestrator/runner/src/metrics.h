// The metrics channel's filter: what a trainer's progress line may carry to the
// host. Private to the runner (unit-tested in orchestrator/runner/tests/metrics_test.cc).
//
// A line is a flat JSON object. Only members whose name the spec declared
// (spec.metrics) and whose value is a finite number or a boolean pass; every
// other member is dropped and counted. Names are the spec's, never the trainer's:
// a trainer that names a key after a row ("Jane_Doe_123") gets it dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cordon::runner::internal {

inline constexpr std::size_t kMaxMetricLine = 4096;

struct SanitisedMetrics {
  nlohmann::json values = nlohmann::json::object();  // declared names only; may be empty
  std::uint64_t dropped = 0;                          // members that did not pass
};

// nullopt: not a JSON object, or longer than kMaxMetricLine (nothing counted).
[[nodiscard]] std::optional<SanitisedMetrics> SanitiseMetrics(std::string_view line,
                                                              const std::set<std::string>& declared);

}  // namespace cordon::runner::internal
