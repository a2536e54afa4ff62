#include "cordon/datasets/expectations.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <utility>

namespace cordon::orchestrator {
namespace {

using nlohmann::json;
using specs::ColumnType;

bool ParseDouble(std::string_view v, double& out) {
  if (v.empty()) return false;
  // Fast path: a plain non-negative integer of up to 15 digits (exact in a double).
  if (v.size() <= 15 && v.front() >= '0' && v.front() <= '9') {
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) n = n * 10 + static_cast<std::uint64_t>(v[i] - '0');
    if (i == v.size()) {
      out = static_cast<double>(n);
      return true;
    }
  }
  if (v.front() == '+') v.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && ptr == v.data() + v.size() && std::isfinite(out);
}

bool IsInteger(std::string_view v) {
  if (!v.empty() && (v.front() == '-' || v.front() == '+')) v.remove_prefix(1);
  return !v.empty() && v.size() <= 19 && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
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

bool MatchesType(ColumnType type, std::string_view v, bool numeric) {
  switch (type) {
    case ColumnType::kString: return true;
    case ColumnType::kInteger: return IsInteger(v);
    case ColumnType::kNumber: return numeric;
    case ColumnType::kBoolean: return IsBoolean(v);
  }
  return true;
}

std::uint64_t HashOf(std::string_view v) { return std::hash<std::string_view>{}(v); }

// LSD radix sort, 16 bits a pass: the `unique` check sorts one hash a row,
// which std::sort makes the costliest step of a large input.
void RadixSort(std::vector<std::uint64_t>& v) {
  if (v.size() < 4096) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<std::uint64_t> tmp(v.size());
  std::vector<std::size_t> count(1u << 16);
  for (unsigned shift = 0; shift < 64; shift += 16) {
    std::fill(count.begin(), count.end(), 0);
    for (const std::uint64_t x : v) ++count[(x >> shift) & 0xffff];
    std::size_t sum = 0;
    for (std::size_t& c : count) sum += std::exchange(c, sum);
    for (const std::uint64_t x : v) tmp[count[(x >> shift) & 0xffff]++] = x;
    v.swap(tmp);
  }
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

bool ColumnAccumulator::Add(std::string_view v, double* number) {
  ++s_.count;
  if (v.empty()) {
    ++s_.nulls;
    return false;
  }
  double d = 0;
  const bool numeric = ParseDouble(v, d);
  if (numeric) {
    if (number != nullptr) *number = d;
    if (s_.numeric == 0 || d < s_.min) s_.min = d;
    if (s_.numeric == 0 || d > s_.max) s_.max = d;
    s_.sum += d;
    ++s_.numeric;
    if (IsInteger(v)) ++s_.integers;
  }
  if (v.size() <= 5 && IsBoolean(v)) ++s_.booleans;
  if (track_distinct_ && !s_.distinct_capped) {
    distinct_.insert(HashOf(v));
    if (distinct_.size() > kMaxDistinctTracked) {
      s_.distinct_capped = true;
      distinct_.clear();
    }
  }
  return numeric;
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

Status ExpectationEvaluator::Record(std::span<const std::string> fields) {
  const std::size_t n = std::min(fields.size(), state_.size());
  for (std::size_t i = 0; i < n; ++i) {
    Column& c = state_[i];
    const std::string& v = fields[i];
    double d = 0;
    const bool numeric = c.acc.Add(v, &d);
    if (c.expect == nullptr || v.empty()) continue;
    const specs::ColumnExpectation& e = *c.expect;
    if (e.type && !MatchesType(*e.type, v, numeric)) ++c.wrong_type;
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
    RadixSort(c.hashes);
    std::uint64_t duplicates = 0;
    for (std::size_t i = 1; i < c.hashes.size(); ++i) duplicates += c.hashes[i] == c.hashes[i - 1];
    if (duplicates > 0) fail("unique", json{{"duplicate_values", duplicates}}, true);
    c.hashes = {};
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
