// Fuzzes the projector + `expect:` evaluator pass over hostile CSV: nothing may
// crash, and a result must always round-trip through its bounded parser.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cordon/datasets/csv_projection.h"
#include "cordon/datasets/expectations.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cordon;
  specs::Expectations e;
  e.min_rows = 1;
  e.max_drift = 0.1;
  specs::ColumnExpectation a{"a", specs::ColumnType::kInteger, 0.0, 100.0, 0.5, std::nullopt, true};
  specs::ColumnExpectation b{"b", std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                             std::vector<std::string>{"x", "y"}, false};
  e.columns = {a, b};
  orchestrator::Summaries baseline;
  baseline["a"] = orchestrator::ColumnSummary{10, 1, 9, 9, 0, 1.0, 50.0, 200.0, 0, false};
  orchestrator::ExpectationEvaluator evaluator(e, baseline);
  orchestrator::CsvProjector csv({"b"}, [](std::string_view) { return cordon::Status{}; });
  csv.Observe(evaluator.columns(), [&](std::span<const std::string_view> f) { return evaluator.Record(f); });
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t half = size / 2;
  if (!csv.Feed(input.substr(0, half)) || !csv.Feed(input.substr(half)) || !csv.Finish()) return 0;
  const auto result = evaluator.Finish(csv.observed_present(), csv.rows() > 0 ? csv.rows() - 1 : 0);
  if (!orchestrator::ExpectationResult::FromJson(result.ToJson())) std::abort();
  return 0;
}
