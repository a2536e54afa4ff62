// `expect:` on a job input: the data checks run inside the sandbox on the
// decrypted plaintext, in the same streaming pass that writes /data/<name>,
// before the trainer starts (job-specs/SCHEMA.md "expect"). A failed check
// stops the job with outcome `input_rejected` and quarantines the version.
//
// This header only describes the checks (parsed and validated from YAML);
// the evaluator is the datasets component's (orchestrator/datasets/include/
// cordon/datasets/expectations.h). Field names are the contract:
//   expect:
//     rows: {min: 1000, max: 10000000}
//     columns:
//       age: {type: integer, min: 0, max: 120, max_null_fraction: 0.0}
//       churned: {allowed: ["0", "1"]}
//       id: {unique: true}
//     max_drift: 0.2
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cordon/yaml/strict_yaml.h"

namespace cordon::specs {

// A column's value type. A null (empty field) matches every type; the null
// rate is its own check.
enum class ColumnType { kString, kInteger, kNumber, kBoolean };
[[nodiscard]] const char* ColumnTypeName(ColumnType type);
[[nodiscard]] std::optional<ColumnType> ParseColumnType(std::string_view name);

struct ColumnExpectation {
  std::string name;                           // a header name of the CSV
  std::optional<ColumnType> type;
  std::optional<double> min, max;             // numeric range (implies a number)
  std::optional<double> max_null_fraction;    // 0..1
  std::optional<std::vector<std::string>> allowed;  // the only values allowed (exact, case-sensitive)
  bool unique = false;                        // no value twice (nulls ignored)
};

struct Expectations {
  std::optional<std::uint64_t> min_rows, max_rows;  // data rows (the header is not a row)
  std::vector<ColumnExpectation> columns;           // in file order; every name must be in the header
  // Per-column summary drift allowed against the last known good version of
  // the input's dataset (`cordon datasets mark-good`): for each column the
  // larger of |null rate - good null rate| and, when numeric in both,
  // |mean - good mean| / (good max - good min). None known good: not checked.
  std::optional<double> max_drift;

  // The number of individual checks (rows counts as one; each set field of a column one).
  [[nodiscard]] std::size_t CheckCount() const;
};

inline constexpr std::size_t kMaxExpectColumns = 1024;
inline constexpr std::size_t kMaxExpectColumnBytes = 256;  // a column name (it reaches the audit log)
inline constexpr std::size_t kMaxAllowedValues = 1024;
inline constexpr std::size_t kMaxAllowedValueBytes = 256;

// Reads `node` (the value of an input's `expect:`) into `out`; every problem
// becomes a diagnostic naming `where` ("spec.inputs[0].expect.columns.age.min").
void ReadExpectations(yaml::Diagnostics& d, const yaml::Node& node, const std::string& where,
                      std::optional<Expectations>& out);

// The checks as JSON, in the schema's own shape (`cordon validate --json`).
[[nodiscard]] nlohmann::json ToJson(const Expectations& expect);

}  // namespace cordon::specs
