#include "metrics.h"

#include <cmath>

namespace cordon::runner::internal {

std::optional<SanitisedMetrics> SanitiseMetrics(std::string_view line, const std::set<std::string>& declared) {
  if (line.size() > kMaxMetricLine) return std::nullopt;
  nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return std::nullopt;
  SanitisedMetrics out;
  for (const auto& [key, value] : parsed.items()) {
    const bool finite = value.is_number() && (!value.is_number_float() || std::isfinite(value.get<double>()));
    if (declared.contains(key) && (finite || value.is_boolean())) {
      out.values[key] = value;
    } else {
      ++out.dropped;
    }
  }
  return out;
}

}  // namespace cordon::runner::internal
