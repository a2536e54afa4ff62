#include "cordon/datasets/expectations.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

std::uint64_t Mix(std::uint64_t x) {  // MurmurHash3's 64-bit finaliser: a bijection
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

std::uint64_t Load64(const char* p) {
  std::uint64_t x = 0;
  std::memcpy(&x, p, 8);
  return x;  // little-endian hosts only (x86-64, arm64)
}

std::uint64_t Load32(const char* p) {
  std::uint32_t x = 0;
  std::memcpy(&x, p, 4);
  return x;
}

std::uint64_t Byte(const char* p, std::size_t i) { return static_cast<unsigned char>(p[i]); }

// A value of 1 to 7 bytes with its length in the top byte: one word, below
// 2^59, different for every such value.
std::uint64_t PackShort(std::string_view v) {
  const char* p = v.data();
  const std::size_t n = v.size();
  std::uint64_t x = 0;
  if (n >= 4) {  // two overlapping 4-byte loads cover 4..7 bytes
    x = Load32(p) | (Load32(p + n - 4) << (8 * (n - 4)));
  } else if (n > 0) {
    x = Byte(p, 0) | (Byte(p, n / 2) << (8 * (n / 2))) | (Byte(p, n - 1) << (8 * (n - 1)));
  }
  return x | (static_cast<std::uint64_t>(n) << 56);
}

// The per-process SipHash key for the values not hashed exactly.
struct HashKey {
  std::uint64_t k0 = 0, k1 = 0;
  HashKey() {
    std::uint64_t k[2] = {0, 0};
    if (RAND_bytes(reinterpret_cast<unsigned char*>(k), sizeof k) != 1) std::abort();  // no key, no sound check
    k0 = k[0];
    k1 = k[1];
    OPENSSL_cleanse(k, sizeof k);
  }
};

const HashKey& Key() {
  static const HashKey key;
  return key;
}

// kDigitsOffset[L]: where the keys of the strings of L decimal digits start
// (1 <= L <= 18), 10^L of them each: together below 2^60, and dense for ids
// counted up from 0.
constexpr auto kDigitsOffset = [] {
  std::array<std::uint64_t, 19> o{};
  std::uint64_t at = 0, count = 10;
  for (std::size_t len = 1; len <= 18; ++len, count *= 10) {
    o[len] = at;
    at += count;
  }
  return o;
}();
constexpr std::uint64_t kPackedBase = 1ULL << 60;  // short values that are not digits: above

// A value's exact key (two different values never share one), given its
// digits' value when it is a plain string of 1..15 decimal digits (`digits`,
// else ~0): a string of 1..18 digits, or any other value of up to 7 bytes.
// Other values have none (returns false).
bool ExactKey(std::string_view v, std::uint64_t digits, std::uint64_t& key) {
  const std::size_t n = v.size();
  if (digits != ~0ULL) {
    key = kDigitsOffset[n] + digits;
    return true;
  }
  if (n >= 16 && n <= 18) {
    std::uint64_t x = 0;
    bool all = true;
    for (const char c : v) {
      all &= c >= '0' && c <= '9';
      x = x * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (all) {
      key = kDigitsOffset[n] + x;
      return true;
    }
  }
  if (n > 7) return false;
  key = kPackedBase + PackShort(v);
  return true;
}

// The 64-bit hash of a value: its exact key mixed (a bijection), else keyed SipHash.
std::uint64_t HashValue(std::string_view v, std::uint64_t digits) {
  std::uint64_t key = 0;
  return ExactKey(v, digits, key) ? Mix(key) : SipHash24(Key().k0, Key().k1, v);
}

// A non-empty value's kind: parsed once for the summary and every check.
struct Value {
  double number = 0;
  std::uint64_t digits = ~0ULL;  // the value of a plain string of 1..15 digits
  bool numeric = false, integer = false, boolean = false;
};

[[gnu::always_inline]] inline Value Classify(std::string_view v) {
  Value out;
  // Fast path: a plain non-negative integer of up to 15 digits (exact in a double).
  if (v.size() <= 15 && v.front() >= '0' && v.front() <= '9') {
    std::uint64_t n = 0;
    std::size_t i = 0;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) n = n * 10 + static_cast<std::uint64_t>(v[i] - '0');
    if (i == v.size()) {
      out.number = static_cast<double>(n);
      out.digits = n;
      out.numeric = out.integer = true;
      out.boolean = v.size() == 1 && n <= 1;
      return out;
    }
  }
  out.numeric = ParseDouble(v, out.number, out.integer);
  out.boolean = v.size() <= 5 && IsBoolean(v);
  return out;
}

// Adds a non-empty value to a column summary (its count already counted).
[[gnu::always_inline]] inline void Tally(ColumnSummary& s, const Value& x) {
  if (x.numeric) {
    if (s.numeric == 0 || x.number < s.min) s.min = x.number;
    if (s.numeric == 0 || x.number > s.max) s.max = x.number;
    s.sum += x.number;
    ++s.numeric;
    s.integers += x.integer;
  }
  s.booleans += x.boolean;
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
  const Value x = Classify(v);
  Tally(s_, x);
  if (x.numeric) {
    if (number != nullptr) *number = x.number;
    if (integer != nullptr) *integer = x.integer;
  }
  if (track_distinct_ && !s_.distinct_capped) {
    if (distinct_.Insert(HashValue(v, x.digits)) && distinct_.size() > kMaxDistinctTracked) {
      s_.distinct_capped = true;
      distinct_ = {};
    }
  }
  return x.numeric;
}

std::uint64_t ValueHash(std::string_view value) {
  return HashValue(value, value.empty() ? ~0ULL : Classify(value).digits);
}

std::uint64_t SipHash24(std::uint64_t k0, std::uint64_t k1, std::string_view data) {
  std::uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
  std::uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
  const auto round = [&] {
    v0 += v1; v1 = std::rotl(v1, 13); v1 ^= v0; v0 = std::rotl(v0, 32);
    v2 += v3; v3 = std::rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = std::rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = std::rotl(v1, 17); v1 ^= v2; v2 = std::rotl(v2, 32);
  };
  const char* p = data.data();
  const std::size_t n = data.size();
  const char* const last = p + (n & ~std::size_t{7});
  for (; p != last; p += 8) {
    const std::uint64_t m = Load64(p);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t b = static_cast<std::uint64_t>(n) << 56;
  for (std::size_t i = 0; i < (n & 7); ++i) b |= Byte(last, i) << (8 * i);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t RepeatCounter::MixKey(std::uint64_t key) { return Mix(key); }

bool RepeatCounter::Select(std::uint64_t id) {
  auto& bitmap = bitmaps_[id];
  if (!bitmap) {
    // Sparse: more than 16 bytes of bitmap a value (and past 64 bitmaps).
    if (bitmaps_.size() > 64 && bitmaps_.size() * 8192 > 16 * (exact_ + 1)) {
      bitmaps_.erase(id);
      Spill();
      return false;
    }
    bitmap = std::make_unique<std::uint64_t[]>(1024);  // zeroed
  }
  last_id_ = id;
  last_ = bitmap.get();
  return true;
}

void RepeatCounter::Spill() {
  for (const auto& [id, bitmap] : bitmaps_) {
    for (std::uint64_t w = 0; w < 1024; ++w) {
      for (std::uint64_t bits = bitmap[w]; bits != 0; bits &= bits - 1) {
        buckets_.Add(Mix((id << 16) | (w << 6) | static_cast<std::uint64_t>(std::countr_zero(bits))));
      }
    }
  }
  bitmaps_.clear();
  last_id_ = ~std::uint64_t{0};
  last_ = nullptr;
  spilled_ = true;
}

std::uint64_t RepeatCounter::Finish() {
  const std::uint64_t repeats = repeats_ + buckets_.CountRepeats();
  bitmaps_.clear();
  last_id_ = ~std::uint64_t{0};
  last_ = nullptr;
  exact_ = repeats_ = 0;
  spilled_ = false;
  return repeats;
}

void HashBuckets::Bucket::Grow() {
  if (!chunks.empty()) sizes.back() = fill;
  capacity = std::min<std::size_t>(capacity == 0 ? 64 : capacity * 2, 8192);  // 64 KiB chunks at most
  chunks.push_back(std::make_unique_for_overwrite<std::uint64_t[]>(capacity));
  sizes.push_back(0);
  fill = 0;
}

std::uint64_t HashBuckets::CountRepeats() {
  std::uint64_t repeats = 0;
  HashSet seen;
  for (Bucket& b : buckets_) {
    if (b.chunks.empty()) continue;
    b.sizes.back() = b.fill;
    std::size_t total = 0;
    for (const std::size_t n : b.sizes) total += n;
    seen.Clear();
    seen.Reserve(total);
    for (std::size_t c = 0; c < b.chunks.size(); ++c) {
      const std::uint64_t* h = b.chunks[c].get();
      for (std::size_t i = 0; i < b.sizes[c]; ++i) repeats += !seen.Insert(h[i]);
    }
    b = Bucket{};
  }
  return repeats;
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
  for (const specs::ColumnExpectation& e : expect_.columns) {
    columns_.push_back(e.name);
    Column c;
    c.expect = &e;
    c.check_type = e.type.has_value() && *e.type != ColumnType::kString;
    c.type = e.type.value_or(ColumnType::kString);
    c.range = e.min || e.max;
    c.has_min = e.min.has_value();
    c.has_max = e.max.has_value();
    c.min = e.min.value_or(0);
    c.max = e.max.value_or(0);
    c.allowed = e.allowed.has_value();
    if (e.allowed) {
      for (const std::string& a : *e.allowed) {
        if (a.size() <= 7) c.allowed_short.push_back(PackShort(a));
        else c.allowed_long.emplace_back(a);
      }
    }
    c.unique = e.unique;
    if (e.unique) c.repeats = std::make_unique<RepeatCounter>();
    state_.push_back(std::move(c));
  }
  if (expect_.max_drift && baseline_) {
    for (const auto& [name, summary] : *baseline_) {
      if (std::find(columns_.begin(), columns_.end(), name) != columns_.end()) continue;
      columns_.push_back(name);
      state_.emplace_back();
    }
  }
}

// Every value is parsed once (Classify) for its column's summary and every
// check; a value of up to 7 bytes is packed into one word once for `allowed`
// and `unique`.
Status ExpectationEvaluator::Record(std::span<const std::string_view> fields) {
  const std::size_t n = std::min(fields.size(), state_.size());
  for (std::size_t i = 0; i < n; ++i) {
    Column& c = state_[i];
    const std::string_view v = fields[i];
    ColumnSummary& s = c.acc.s_;
    ++s.count;
    if (v.empty()) {
      ++s.nulls;
      continue;
    }
    const Value x = Classify(v);
    Tally(s, x);
    if (c.expect == nullptr) continue;
    if (c.check_type) {
      const bool ok = c.type == ColumnType::kInteger ? x.integer : c.type == ColumnType::kNumber ? x.numeric : x.boolean;
      c.wrong_type += !ok;
    }
    if (c.range) {
      c.wrong_type += !x.numeric;
      c.below += x.numeric && c.has_min && x.number < c.min;
      c.above += x.numeric && c.has_max && x.number > c.max;
    }
    if (c.allowed) {
      bool ok = false;
      if (v.size() <= 7) {
        const std::uint64_t word = PackShort(v);
        for (const std::uint64_t a : c.allowed_short) ok |= a == word;
      } else {
        ok = std::find(c.allowed_long.begin(), c.allowed_long.end(), v) != c.allowed_long.end();
      }
      c.not_allowed += !ok;
    }
    if (c.unique) {
      std::uint64_t key = 0;
      if (ExactKey(v, x.digits, key)) c.repeats->AddExact(key);
      else c.repeats->AddHash(SipHash24(Key().k0, Key().k1, v));
    }
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
    const std::uint64_t duplicates = c.repeats->Finish();
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
