// The `expect:` evaluator and the per-column summaries it shares with the
// dataset registry (docs/INCIDENT-RESPONSE.md, job-specs/SCHEMA.md "expect").
//
// Inside the sandbox the init decrypts an input chunk by chunk; the CSV
// projector hands every data record's observed fields to Record() in that one
// pass (no second copy of the data, nothing buffered but counters, the
// running min/max/sum and, for `unique` columns, what RepeatCounter keeps:
// a bit per value of 1..18 digits or up to 7 bytes, else a 64-bit keyed hash
// filed by its top byte so the final count works bucket by bucket in cache).
// Finish() returns an ExpectationResult: counts, rates, min/max/mean and the
// failed checks with their observed values. That typed result is the only
// thing the init reports back; it never holds a field's text, except a
// numeric column's observed min and max (aggregates the spec asked about).
//
// The same ColumnSummary is what `cordon seal` records for each column of a
// version in the registry (the baseline of `max_drift`, and what `cordon
// datasets diff` compares).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
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

// A value's 64-bit identity for distinct counts and `unique`. Exact (two
// different values never share one) for a string of 1 to 18 decimal digits
// (ids, codes, numbers: the common keys) and any other value of up to 7
// bytes; any other value takes SipHash-2-4 under a key drawn at random once
// per process, so an input cannot be crafted to make two of its values
// collide (a chance collision among n such values: about n^2 / 2^65).
[[nodiscard]] std::uint64_t ValueHash(std::string_view value);
// SipHash-2-4 of `data` under the key (k0, k1) (Aumasson and Bernstein).
[[nodiscard]] std::uint64_t SipHash24(std::uint64_t k0, std::uint64_t k1, std::string_view data);

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
  friend class ExpectationEvaluator;  // its Record() adds values through the same code, inlined
  ColumnSummary s_;
  bool track_distinct_;
  HashSet distinct_;
};

// The hashes of a `unique` column's values, filed by their top byte as they
// come (in chunks that never move), so CountRepeats() takes one bucket at a
// time through a set that stays in cache instead of a set of every value.
class HashBuckets final {
 public:
  void Add(std::uint64_t h) {
    Bucket& b = buckets_[h >> 56];
    if (b.fill == b.capacity) b.Grow();
    b.chunks.back()[b.fill++] = h;
  }
  // How many hashes repeat an earlier one; empties the buckets.
  std::uint64_t CountRepeats();

 private:
  struct Bucket {
    std::vector<std::unique_ptr<std::uint64_t[]>> chunks;
    std::vector<std::size_t> sizes;  // of each chunk; the last one holds `fill`
    std::size_t fill = 0, capacity = 0;
    void Grow();
  };
  std::array<Bucket, 256> buckets_;
};

// The `unique` check's count of repeated values. A value with an exact key
// (ValueHash) sets its bit in a bitmap of 2^16 keys, found by the key's upper
// bits (ids counted up from anywhere fill few bitmaps: about one bit a value,
// a repeat seen at once); once the bitmaps grow sparse (more than 16 bytes a
// value) their keys move to the hash buckets, where every other value goes.
class RepeatCounter final {
 public:
  void AddExact(std::uint64_t key) {
    if (spilled_) return buckets_.Add(MixKey(key));
    const std::uint64_t id = key >> 16;
    if (id != last_id_ && !Select(id)) return buckets_.Add(MixKey(key));
    std::uint64_t& word = last_[(key >> 6) & 1023];
    const std::uint64_t bit = std::uint64_t{1} << (key & 63);
    repeats_ += (word & bit) != 0;
    word |= bit;
    ++exact_;
  }
  void AddHash(std::uint64_t h) { buckets_.Add(h); }
  // The repeats among everything added; empties the counter.
  std::uint64_t Finish();
  [[nodiscard]] bool spilled() const { return spilled_; }
  static std::uint64_t MixKey(std::uint64_t key);  // what ValueHash makes of an exact key

 private:
  bool Select(std::uint64_t id);  // makes `id`'s bitmap the current one; false once spilled
  void Spill();

  std::map<std::uint64_t, std::unique_ptr<std::uint64_t[]>> bitmaps_;  // key >> 16 -> 1024 words
  std::uint64_t last_id_ = ~std::uint64_t{0};
  std::uint64_t* last_ = nullptr;
  std::uint64_t exact_ = 0, repeats_ = 0;
  bool spilled_ = false;
  HashBuckets buckets_;
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
    // What Record() checks, taken from `expect` once.
    bool check_type = false, range = false, has_min = false, has_max = false, allowed = false, unique = false;
    specs::ColumnType type = specs::ColumnType::kString;
    double min = 0, max = 0;
    std::vector<std::uint64_t> allowed_short;       // the allowed values of up to 7 bytes, packed
    std::vector<std::string_view> allowed_long;     // the others
    std::unique_ptr<RepeatCounter> repeats;  // unique
  };
  void CheckColumn(Column& c, bool present, ExpectationResult& r);
  void CheckDrift(ExpectationResult& r);

  specs::Expectations expect_;
  std::optional<Summaries> baseline_;
  std::vector<std::string> columns_;
  std::vector<Column> state_;
};

}  // namespace cordon::orchestrator
