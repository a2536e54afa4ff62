// The `expect:` evaluator and the per-column summaries it shares with the
// dataset registry (docs/INCIDENT-RESPONSE.md, job-specs/SCHEMA.md "expect").
//
// Inside the sandbox the init decrypts an input chunk by chunk; the CSV
// projector hands every data record's observed fields to Record() in that one
// pass (no second copy of the data, nothing buffered but counters, the
// running min/max/sum and, for `unique` columns, one 64-bit hash per value).
// Finish() returns an ExpectationResult: counts, rates, min/max/mean and the
// failed checks with their observed values. That typed result is the only
// thing the init reports back; it never holds a field's text, except a
// numeric column's observed min and max (aggregates the spec asked about).
//
// The same ColumnSummary is what `cordon seal` records for each column of a
// version in the registry (the baseline of `max_drift`, and what `cordon
// datasets diff` compares).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/error.h"
#include "cordon/specs/expect.h"

namespace cordon::orchestrator {

// Aggregates of one column. A null is an empty field.
struct ColumnSummary {
  std::uint64_t count = 0;     // values seen (data rows)
  std::uint64_t nulls = 0;
  std::uint64_t numeric = 0;   // non-null values that are decimal numbers
  std::uint64_t integers = 0;  // ... that are integers
  std::uint64_t booleans = 0;  // ... true/false (any case) or 0/1
  double min = 0, max = 0, sum = 0;  // over the numeric values (0 when none)
  std::uint64_t distinct = 0;  // distinct non-null values (only when tracked)
  bool distinct_capped = false;  // more than kMaxDistinctTracked: `distinct` is a lower bound

  [[nodiscard]] double null_fraction() const;
  [[nodiscard]] double mean() const;
  // Every non-null value is a number (and there is at least one).
  [[nodiscard]] bool is_numeric() const { return numeric > 0 && numeric == count - nulls; }
  [[nodiscard]] nlohmann::json ToJson() const;
  // Bounded, type-checked; nullopt for anything malformed.
  [[nodiscard]] static std::optional<ColumnSummary> FromJson(const nlohmann::json& j);
};

using Summaries = std::map<std::string, ColumnSummary>;
[[nodiscard]] nlohmann::json SummariesToJson(const Summaries& s);
[[nodiscard]] std::optional<Summaries> SummariesFromJson(const nlohmann::json& j);

inline constexpr std::size_t kMaxDistinctTracked = 1u << 16;

// A flat open-addressing set of 64-bit hashes (linear probing, at most half
// full): the distinct counts and the `unique` check.
class HashSet final {
 public:
  void Reserve(std::size_t n);   // room for n hashes without growing
  bool Insert(std::uint64_t h);  // whether h was not there yet
  void Clear();                  // keeps the capacity
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  std::vector<std::uint64_t> slots_;  // 0 = empty; a power of two
  std::size_t size_ = 0;              // including a hash of 0, kept as has_zero_
  bool has_zero_ = false;
};

// Builds a ColumnSummary value by value.
class ColumnAccumulator final {
 public:
  explicit ColumnAccumulator(bool track_distinct = false) : track_distinct_(track_distinct) {}
  // Returns whether the value is a number (then stored in *number when given,
  // and whether it is an integer in *integer).
  bool Add(std::string_view value, double* number = nullptr, bool* integer = nullptr);
  [[nodiscard]] ColumnSummary Summary() const;

 private:
  ColumnSummary s_;
  bool track_distinct_;
  HashSet distinct_;
};

// The per-column summary drift of `now` against `good` (see specs::Expectations::max_drift).
[[nodiscard]] double ColumnDrift(const ColumnSummary& now, const ColumnSummary& good);

// One failed check. `observed` and `expected` are numbers, counts or the
// check's own parameters; never a field's text.
struct CheckFailure {
  std::string check;   // rows, present, type, min, max, max_null_fraction, allowed, unique, max_drift
  std::string column;  // empty for rows
  nlohmann::json observed;
  nlohmann::json expected;
};

struct ExpectationResult {
  bool passed = false;
  std::uint64_t rows = 0;
  std::size_t checks = 0;  // checks evaluated
  std::vector<CheckFailure> failures;
  std::optional<double> drift;   // the largest column drift, when a baseline was known
  std::string drift_column;
  bool baseline_known = false;
  Summaries summaries;           // the observed columns

  [[nodiscard]] nlohmann::json ToJson() const;
  [[nodiscard]] static std::optional<ExpectationResult> FromJson(const nlohmann::json& j);
};

inline constexpr std::size_t kMaxReportedFailures = 64;

class ExpectationEvaluator final {
 public:
  // `baseline`: the summaries of the dataset's last known good version (drift).
  ExpectationEvaluator(specs::Expectations expect, std::optional<Summaries> baseline);
  ExpectationEvaluator(const ExpectationEvaluator&) = delete;
  ExpectationEvaluator& operator=(const ExpectationEvaluator&) = delete;

  // The columns the projector must observe, in the order Record() gets them.
  [[nodiscard]] const std::vector<std::string>& columns() const { return columns_; }
  // One data record: the observed fields, in columns() order. Never fails.
  Status Record(std::span<const std::string_view> fields);
  // `present`: the projector's observed_present(); `rows`: data rows seen.
  [[nodiscard]] ExpectationResult Finish(const std::vector<bool>& present, std::uint64_t rows);

 private:
  struct Column {
    const specs::ColumnExpectation* expect = nullptr;  // null: observed for drift only
    ColumnAccumulator acc;
    std::uint64_t wrong_type = 0, below = 0, above = 0, not_allowed = 0;
    // unique: one hash per non-null value (8 bytes a row); duplicates are
    // counted at the end (CountDuplicates).
    std::vector<std::uint64_t> hashes;
  };
  void CheckColumn(Column& c, bool present, ExpectationResult& r);
  void CheckDrift(ExpectationResult& r);

  specs::Expectations expect_;
  std::optional<Summaries> baseline_;
  std::vector<std::string> columns_;
  std::vector<Column> state_;
};

}  // namespace cordon::orchestrator
