#include "cordon/datasets/expectations.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <functional>
#include <utility>

namespace cordon::orchestrator {
namespace {

using nlohmann::json;
using specs::ColumnType;

bool IsInteger(std::string_view v) {
  if (!v.empty() && (v.front() == '-' || v.front() == '+')) v.remove_prefix(1);
  return !v.empty() && v.size() <= 19 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whether `v` is a finite decimal number (then in `out`), and whether it is
// an integer (IsInteger) in `integer`.
bool ParseDouble(std::string_view v, double& out, bool& integer) {
  integer = false;
  if (v.empty()) return false;
  // Fast path: a plain non-negative integer of up to 15 digits (exact in a double).
  if (v.size() <= 15 && v.front() >= '0' && v.front() <= '9') {
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) n = n * 10 + static_cast<std::uint64_t>(v[i] - '0');
    if (i == v.size()) {
      out = static_cast<double>(n);
      integer = true;
      return true;
    }
  }
  std::string_view number = v;
  if (number.front() == '+') number.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), out);
  if (ec != std::errc() || ptr != number.data() + number.size() || !std::isfinite(out)) return false;
  integer = IsInteger(v);
  return true;
}

bool EqualsLower(std::string_view v, std::string_view lower) {
  if (v.size() != lower.size()) return false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i] >= 'A' && v[i] <= 'Z' ? static_cast<char>(v[i] - 'A' + 'a') : v[i];
    if (c != lower[i]) return false;
  }
  return true;
}

bool IsBoolean(std::string_view v) {
  return v == "0" || v == "1" || EqualsLower(v, "true") || EqualsLower(v, "false");
}

bool MatchesType(ColumnType type, std::string_view v, bool numeric, bool integer) {
  switch (type) {
    case ColumnType::kString: return true;
    case ColumnType::kInteger: return integer;
    case ColumnType::kNumber: return numeric;
    case ColumnType::kBoolean: return IsBoolean(v);
  }
  return true;
}

// A value's 64-bit hash (distinct counts, `unique`). A value of up to 7 bytes
// is packed with its length into one word and put through MurmurHash3's
// 64-bit finaliser, a bijection: short values (ids, codes, small numbers),
// the common case, never collide. Longer ones take std::hash.
std::uint64_t HashOf(std::string_view v) {
  if (v.size() > 7) return std::hash<std::string_view>{}(v);
  std::uint64_t x = static_cast<std::uint64_t>(v.size()) << 56;
  for (std::size_t i = 0; i < v.size(); ++i) x |= static_cast<std::uint64_t>(static_cast<unsigned char>(v[i])) << (8 * i);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}



// How many of `hashes` repeat an earlier one. They are first partitioned in
// place by their top byte (a counting pass, then each misplaced hash swapped
// into its bucket: equal hashes share a bucket), then each bucket goes
// through a set small enough to stay in cache.
std::uint64_t CountDuplicates(std::vector<std::uint64_t>& hashes) {
  const auto bucket = [](std::uint64_t h) { return static_cast<std::size_t>(h >> 56); };
  std::array<std::size_t, 257> start{};
  for (const std::uint64_t h : hashes) ++start[bucket(h) + 1];
  for (std::size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::array<std::size_t, 256> next{};
  std::copy(start.begin(), start.end() - 1, next.begin());
  for (std::size_t b = 0; b < 256; ++b) {
    while (next[b] < start[b + 1]) {
      std::uint64_t h = hashes[next[b]];
      while (bucket(h) != b) std::swap(h, hashes[next[bucket(h)]++]);  // h's slot is filled: take what was there
      hashes[next[b]++] = h;
    }
  }
  const std::vector<std::uint64_t>& sorted = hashes;
  std::uint64_t duplicates = 0;
  HashSet seen;
  for (std::size_t b = 0; b < 256; ++b) {
    seen.Clear();
    seen.Reserve(start[b + 1] - start[b]);
    for (std::size_t i = start[b]; i < start[b + 1]; ++i) duplicates += !seen.Insert(sorted[i]);
  }
  return duplicates;
}

template <class T>
bool Get(const json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it == j.end()) return false;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) return false;
  } else {
    if (!it->is_number_unsigned()) return false;
  }
  out = it->get<T>();
  return true;
}

}  // namespace

double ColumnSummary::null_fraction() const {
  return count == 0 ? 0.0 : static_cast<double>(nulls) / static_cast<double>(count);
}

double ColumnSummary::mean() const { return numeric == 0 ? 0.0 : sum / static_cast<double>(numeric); }

json ColumnSummary::ToJson() const {
  json j = {{"count", count}, {"nulls", nulls}, {"null_fraction", null_fraction()}, {"numeric", numeric},
            {"integers", integers}, {"booleans", booleans}};
  if (numeric > 0) {
    j["min"] = min;
    j["max"] = max;
    j["mean"] = mean();
    j["sum"] = sum;
  }
  j["distinct"] = distinct;
  if (distinct_capped) j["distinct_capped"] = true;
  return j;
}

std::optional<ColumnSummary> ColumnSummary::FromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ColumnSummary s;
  if (!Get(j, "count", s.count) || !Get(j, "nulls", s.nulls) || !Get(j, "numeric", s.numeric)) return std::nullopt;
  (void)Get(j, "integers", s.integers);
  (void)Get(j, "booleans", s.booleans);
  (void)Get(j, "distinct", s.distinct);
  (void)Get(j, "distinct_capped", s.distinct_capped);
  if (s.numeric > 0 && (!Get(j, "min", s.min) || !Get(j, "max", s.max) || !Get(j, "sum", s.sum))) return std::nullopt;
  if (s.nulls > s.count || s.numeric > s.count - s.nulls) return std::nullopt;
  return s;
}

json SummariesToJson(const Summaries& s) {
  json j = json::object();
  for (const auto& [name, summary] : s) j[name] = summary.ToJson();
  return j;
}

std::optional<Summaries> SummariesFromJson(const json& j) {
  if (!j.is_object() || j.size() > 16384) return std::nullopt;
  Summaries out;
  for (const auto& [name, value] : j.items()) {
    auto s = ColumnSummary::FromJson(value);
    if (!s) return std::nullopt;
    out.emplace(name, *s);
  }
  return out;
}

bool ColumnAccumulator::Add(std::string_view v, double* number, bool* integer) {
  ++s_.count;
  if (integer != nullptr) *integer = false;
  if (v.empty()) {
    ++s_.nulls;
    return false;
  }
  double d = 0;
  bool whole = false;
  const bool numeric = ParseDouble(v, d, whole);
  if (numeric) {
    if (number != nullptr) *number = d;
    if (integer != nullptr) *integer = whole;
    if (s_.numeric == 0 || d < s_.min) s_.min = d;
    if (s_.numeric == 0 || d > s_.max) s_.max = d;
    s_.sum += d;
    ++s_.numeric;
    if (whole) ++s_.integers;
  }
  if (v.size() <= 5 && IsBoolean(v)) ++s_.booleans;
  if (track_distinct_ && !s_.distinct_capped) {
    if (distinct_.Insert(HashOf(v)) && distinct_.size() > kMaxDistinctTracked) {
      s_.distinct_capped = true;
      distinct_ = {};
    }
  }
  return numeric;
}

void HashSet::Reserve(std::size_t n) {
  std::size_t want = 64;
  while (want < n * 2) want *= 2;
  if (want <= slots_.size()) return;
  std::vector<std::uint64_t> old(want);
  old.swap(slots_);
  size_ = has_zero_ ? 1 : 0;
  for (const std::uint64_t x : old) {
    if (x != 0) (void)Insert(x);
  }
}

void HashSet::Clear() {
  std::fill(slots_.begin(), slots_.end(), 0);
  size_ = 0;
  has_zero_ = false;
}

bool HashSet::Insert(std::uint64_t h) {
  if (h == 0) {  // 0 marks an empty slot: kept aside
    if (has_zero_) return false;
    has_zero_ = true;
    ++size_;
    return true;
  }
  if ((size_ + 1) * 2 > slots_.size()) Reserve(size_ + 1);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = (h ^ (h >> 29)) & mask;; i = (i + 1) & mask) {  // linear probing
    if (slots_[i] == h) return false;
    if (slots_[i] == 0) {
      slots_[i] = h;
      ++size_;
      return true;
    }
  }
}

ColumnSummary ColumnAccumulator::Summary() const {
  ColumnSummary s = s_;
  if (track_distinct_) s.distinct = s.distinct_capped ? kMaxDistinctTracked : distinct_.size();
  return s;
}

double ColumnDrift(const ColumnSummary& now, const ColumnSummary& good) {
  double drift = std::fabs(now.null_fraction() - good.null_fraction());
  if (now.is_numeric() && good.is_numeric()) {
    const double range = good.max - good.min;
    const double scale = range > 0 ? range : std::max(std::fabs(good.mean()), 1.0);
    drift = std::max(drift, std::fabs(now.mean() - good.mean()) / scale);
  } else if (now.is_numeric() != good.is_numeric() && now.count > now.nulls && good.count > good.nulls) {
    drift = std::max(drift, 1.0);  // the column changed kind
  }
  return drift;
}

json ExpectationResult::ToJson() const {
  json failed = json::array();
  for (const CheckFailure& f : failures) {
    json one = {{"check", f.check}, {"observed", f.observed}, {"expected", f.expected}};
    if (!f.column.empty()) one["column"] = f.column;
    failed.push_back(std::move(one));
  }
  json j = {{"passed", passed}, {"rows", rows}, {"checks", checks}, {"failed", std::move(failed)},
            {"baseline_known", baseline_known}, {"summaries", SummariesToJson(summaries)}};
  if (drift) {
    j["drift"] = *drift;
    j["drift_column"] = drift_column;
  }
  return j;
}

std::optional<ExpectationResult> ExpectationResult::FromJson(const json& j) {
  if (!j.is_object()) return std::nullopt;
  ExpectationResult r;
  if (!Get(j, "passed", r.passed) || !Get(j, "rows", r.rows) || !Get(j, "checks", r.checks)) return std::nullopt;
  (void)Get(j, "baseline_known", r.baseline_known);
  const auto failed = j.find("failed");
  if (failed == j.end() || !failed->is_array() || failed->size() > kMaxReportedFailures) return std::nullopt;
  for (const json& f : *failed) {
    if (!f.is_object() || !f.contains("check") || !f["check"].is_string()) return std::nullopt;
    CheckFailure one{f["check"].get<std::string>(), f.value("column", ""), f.value("observed", json()),
                     f.value("expected", json())};
    if (one.check.size() > 32 || one.column.size() > 1024) return std::nullopt;
    r.failures.push_back(std::move(one));
  }
  if (const auto it = j.find("summaries"); it != j.end()) {
    auto s = SummariesFromJson(*it);
    if (!s) return std::nullopt;
    r.summaries = std::move(*s);
  }
  double drift = 0;
  if (Get(j, "drift", drift)) {
    r.drift = drift;
    r.drift_column = j.value("drift_column", "");
  }
  return r;
}

ExpectationEvaluator::ExpectationEvaluator(specs::Expectations expect, std::optional<Summaries> baseline)
    : expect_(std::move(expect)), baseline_(std::move(baseline)) {
  for (const specs::ColumnExpectation& c : expect_.columns) {
    columns_.push_back(c.name);
    Column state;
    state.expect = &c;
    state.acc = ColumnAccumulator(false);
    state_.push_back(std::move(state));
  }
  if (expect_.max_drift && baseline_) {
    for (const auto& [name, summary] : *baseline_) {
      if (std::find(columns_.begin(), columns_.end(), name) != columns_.end()) continue;
      columns_.push_back(name);
      state_.emplace_back();
    }
  }
}

Status ExpectationEvaluator::Record(std::span<const std::string_view> fields) {
  const std::size_t n = std::min(fields.size(), state_.size());
  for (std::size_t i = 0; i < n; ++i) {
    Column& c = state_[i];
    const std::string_view v = fields[i];
    double d = 0;
    bool integer = false;
    const bool numeric = c.acc.Add(v, &d, &integer);
    if (c.expect == nullptr || v.empty()) continue;
    const specs::ColumnExpectation& e = *c.expect;
    if (e.type && !MatchesType(*e.type, v, numeric, integer)) ++c.wrong_type;
    if ((e.min || e.max) && !numeric) ++c.wrong_type;
    if (numeric && e.min && d < *e.min) ++c.below;
    if (numeric && e.max && d > *e.max) ++c.above;
    if (e.allowed && std::find(e.allowed->begin(), e.allowed->end(), v) == e.allowed->end()) ++c.not_allowed;
    if (e.unique) c.hashes.push_back(HashOf(v));
  }
  return {};
}

void ExpectationEvaluator::CheckColumn(Column& c, bool present, ExpectationResult& r) {
  const specs::ColumnExpectation& e = *c.expect;
  const auto fail = [&](const char* check, json observed, json expected) {
    if (r.failures.size() < kMaxReportedFailures) r.failures.push_back({check, e.name, std::move(observed), std::move(expected)});
  };
  ++r.checks;
  if (!present) {
    fail("present", "missing", "a column of the header");
    return;
  }
  const ColumnSummary s = c.acc.Summary();
  if (e.type) {
    ++r.checks;
    if (c.wrong_type > 0) fail("type", json{{"values_not_matching", c.wrong_type}}, specs::ColumnTypeName(*e.type));
  } else if ((e.min || e.max) && c.wrong_type > 0) {
    fail("type", json{{"values_not_matching", c.wrong_type}}, "number");
  }
  if (e.min) {
    ++r.checks;
    if (c.below > 0) fail("min", json{{"min", s.min}, {"values_below", c.below}}, *e.min);
  }
  if (e.max) {
    ++r.checks;
    if (c.above > 0) fail("max", json{{"max", s.max}, {"values_above", c.above}}, *e.max);
  }
  if (e.max_null_fraction) {
    ++r.checks;
    if (s.null_fraction() > *e.max_null_fraction) fail("max_null_fraction", s.null_fraction(), *e.max_null_fraction);
  }
  if (e.allowed) {
    ++r.checks;
    if (c.not_allowed > 0) fail("allowed", json{{"values_not_allowed", c.not_allowed}}, json{{"allowed_values", e.allowed->size()}});
  }
  if (e.unique) {
    ++r.checks;
    const std::uint64_t duplicates = CountDuplicates(c.hashes);
    c.hashes = {};
    if (duplicates > 0) fail("unique", json{{"duplicate_values", duplicates}}, true);
  }
}

void ExpectationEvaluator::CheckDrift(ExpectationResult& r) {
  if (!expect_.max_drift) return;
  ++r.checks;
  r.baseline_known = baseline_.has_value();
  if (!baseline_) return;  // nothing known good yet: recorded as such, not a failure
  double worst = 0;
  std::string worst_column;
  for (std::size_t i = 0; i < columns_.size(); ++i) {  // each column past the limit is a failure
    const auto good = baseline_->find(columns_[i]);
    if (good == baseline_->end()) continue;
    const auto now = r.summaries.find(columns_[i]);
    const double d = now == r.summaries.end() ? 1.0 : ColumnDrift(now->second, good->second);
    if (d > worst || worst_column.empty()) {
      worst = d;
      worst_column = columns_[i];
    }
    if (d > *expect_.max_drift && r.failures.size() < kMaxReportedFailures) {
      r.failures.push_back({"max_drift", columns_[i], d, *expect_.max_drift});
    }
  }
  r.drift = worst;
  r.drift_column = worst_column;
}

ExpectationResult ExpectationEvaluator::Finish(const std::vector<bool>& present, std::uint64_t rows) {
  ExpectationResult r;
  r.rows = rows;
  if (expect_.min_rows || expect_.max_rows) {
    ++r.checks;
    const bool low = expect_.min_rows && rows < *expect_.min_rows;
    const bool high = expect_.max_rows && rows > *expect_.max_rows;
    if (low || high) {
      json expected = json::object();
      if (expect_.min_rows) expected["min"] = *expect_.min_rows;
      if (expect_.max_rows) expected["max"] = *expect_.max_rows;
      r.failures.push_back({"rows", "", rows, std::move(expected)});
    }
  }
  for (std::size_t i = 0; i < state_.size(); ++i) {
    const bool here = i < present.size() && present[i];
    if (here) r.summaries[columns_[i]] = state_[i].acc.Summary();
    if (state_[i].expect != nullptr) CheckColumn(state_[i], here, r);
  }
  CheckDrift(r);
  r.passed = r.failures.empty();
  return r;
}

}  // namespace cordon::orchestrator
