// The `expect:` evaluator through the real CSV projector: each check passes on
// good data and fails with its observed value (never a field's text) on bad.
#include "cordon/datasets/expectations.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "cordon/datasets/csv_projection.h"
#include "cordon/specs/spec.h"

namespace cordon::orchestrator {
namespace {

specs::Expectations Parse(const std::string& expect) {
  const specs::ParseResult r = specs::ParseSpec(
      "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: t}\nspec:\n"
      "  trainer: {image: /srv/img, command: [/bin/true]}\n"
      "  inputs:\n    - name: d\n      path: /srv/d.sealed\n      expect:\n" + expect +
      "  output: {path: /srv/out, key: kms://local/m}\n");
  EXPECT_TRUE(r.job) << (r.diagnostics.empty() ? "" : r.diagnostics[0].message);
  return r.job ? *r.job->inputs.at(0).expect : specs::Expectations{};
}

struct Pass {
  ExpectationResult result;
  std::string projected;
};

// Projects `columns` (may be empty) and evaluates in the same pass, fed in
// pieces of `piece` bytes.
Pass Evaluate(const specs::Expectations& e, std::string_view csv, std::vector<std::string> columns = {},
             std::optional<Summaries> baseline = std::nullopt, std::size_t piece = 7) {
  Pass run;
  ExpectationEvaluator evaluator(e, std::move(baseline));
  CsvProjector projector(std::move(columns), [&](std::string_view s) {
    run.projected += s;
    return Status{};
  });
  projector.Observe(evaluator.columns(), [&](std::span<const std::string_view> f) { return evaluator.Record(f); });
  for (std::size_t at = 0; at < csv.size(); at += piece) EXPECT_TRUE(projector.Feed(csv.substr(at, piece)));
  EXPECT_TRUE(projector.Finish());
  run.result = evaluator.Finish(projector.observed_present(), projector.rows() - 1);
  return run;
}

const CheckFailure* Failed(const ExpectationResult& r, const std::string& check, const std::string& column = "") {
  for (const CheckFailure& f : r.failures) {
    if (f.check == check && f.column == column) return &f;
  }
  return nullptr;
}

constexpr const char* kGood = "id,age,churned,note\n1,30,0,alpha\n2,41,1,\n3,77,0,\"x,y\"\n4,,1,z\n";

TEST(Expectations, GoodDataPassesEveryCheck) {
  const auto e = Parse(
      "        rows: {min: 2, max: 10}\n"
      "        columns:\n"
      "          id: {type: integer, unique: true}\n"
      "          age: {type: integer, min: 0, max: 120, max_null_fraction: 0.3}\n"
      "          churned: {allowed: [\"0\", \"1\"], type: boolean}\n"
      "          note: {type: string}\n");
  const Pass run = Evaluate(e, kGood, {"age", "churned"});
  EXPECT_TRUE(run.result.passed) << run.result.ToJson().dump();
  EXPECT_EQ(run.result.rows, 4u);
  EXPECT_EQ(run.result.checks, e.CheckCount());
  EXPECT_EQ(run.projected, "age,churned\n30,0\n41,1\n77,0\n,1\n");  // the projection is unchanged
  EXPECT_DOUBLE_EQ(run.result.summaries.at("age").max, 77);
  EXPECT_DOUBLE_EQ(run.result.summaries.at("age").null_fraction(), 0.25);
}

TEST(Expectations, EachCheckFailsWithItsObservedValue) {
  const auto e = Parse(
      "        rows: {min: 5}\n"
      "        columns:\n"
      "          id: {unique: true}\n"
      "          age: {type: integer, min: 18, max: 65, max_null_fraction: 0.0}\n"
      "          churned: {allowed: [\"0\"]}\n"
      "          missing: {type: string}\n");
  const std::string bad = "id,age,churned,note\n1,30,0,a\n1,999,1,b\n2,,7,c\n3,12.5,0,d\n";
  const Pass run = Evaluate(e, bad);
  const ExpectationResult& r = run.result;
  EXPECT_FALSE(r.passed);
  ASSERT_TRUE(Failed(r, "rows"));
  EXPECT_EQ(Failed(r, "rows")->observed, 4);
  ASSERT_TRUE(Failed(r, "unique", "id"));
  EXPECT_EQ(Failed(r, "unique", "id")->observed["duplicate_values"], 1);
  ASSERT_TRUE(Failed(r, "max", "age"));
  EXPECT_EQ(Failed(r, "max", "age")->observed["max"], 999.0);
  EXPECT_EQ(Failed(r, "max", "age")->observed["values_above"], 1);
  ASSERT_TRUE(Failed(r, "min", "age"));
  EXPECT_EQ(Failed(r, "min", "age")->observed["values_below"], 1);
  ASSERT_TRUE(Failed(r, "type", "age"));  // 12.5 is not an integer
  ASSERT_TRUE(Failed(r, "max_null_fraction", "age"));
  EXPECT_DOUBLE_EQ(Failed(r, "max_null_fraction", "age")->observed.get<double>(), 0.25);
  ASSERT_TRUE(Failed(r, "allowed", "churned"));
  EXPECT_EQ(Failed(r, "allowed", "churned")->observed["values_not_allowed"], 2);
  ASSERT_TRUE(Failed(r, "present", "missing"));
  // Only aggregates: no field's text (a, b, c, d, 7) in the result.
  const std::string text = r.ToJson().dump();
  for (const char* leak : {"\"a\"", "\"b\"", "\"7\"", "note"}) EXPECT_EQ(text.find(leak), std::string::npos) << leak;
}

TEST(Expectations, UniqueCountsDuplicatesInALargeColumn) {
  const auto e = Parse("        columns: {id: {unique: true}}\n");
  std::string csv = "id\n";
  for (int i = 0; i < 20000; ++i) csv += std::to_string(i) + "\n";
  EXPECT_TRUE(Evaluate(e, csv, {}, std::nullopt, 4096).result.passed);
  csv += "17\n19999\n17\n";
  const Pass run = Evaluate(e, csv, {}, std::nullopt, 4096);
  ASSERT_TRUE(Failed(run.result, "unique", "id"));
  EXPECT_EQ(Failed(run.result, "unique", "id")->observed["duplicate_values"], 3);
}

TEST(Expectations, DriftAgainstTheLastKnownGoodVersion) {
  const auto e = Parse("        max_drift: 0.2\n");
  // The good version: 10% churn; the poisoned one: labels flipped on a slice.
  std::string good = "id,churned\n", poisoned = "id,churned\n";
  for (int i = 0; i < 100; ++i) {
    good += std::to_string(i) + "," + (i < 10 ? "1" : "0") + "\n";
    poisoned += std::to_string(i) + "," + (i < 50 ? "1" : "0") + "\n";
  }
  const Pass baseline_run = Evaluate(Parse("        columns: {churned: {type: integer}, id: {type: integer}}\n"), good);
  const Summaries baseline = baseline_run.result.summaries;
  EXPECT_TRUE(Evaluate(e, good, {}, baseline).result.passed);
  const Pass run = Evaluate(e, poisoned, {}, baseline);
  ASSERT_TRUE(Failed(run.result, "max_drift", "churned")) << run.result.ToJson().dump();
  EXPECT_NEAR(run.result.drift.value(), 0.4, 1e-9);
  // No baseline: checked, recorded as unknown, not a failure.
  const Pass unknown = Evaluate(e, poisoned);
  EXPECT_TRUE(unknown.result.passed);
  EXPECT_FALSE(unknown.result.baseline_known);
}

TEST(Expectations, ResultRoundTripsThroughItsBoundedParser) {
  const auto e = Parse("        columns: {age: {max: 50}}\n");
  const Pass run = Evaluate(e, kGood);
  auto back = ExpectationResult::FromJson(run.result.ToJson());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->failures.size(), 1u);
  EXPECT_EQ(back->summaries.at("age").count, 4u);
  EXPECT_FALSE(ExpectationResult::FromJson(nlohmann::json::parse(R"({"passed":"yes"})")));
  EXPECT_FALSE(ExpectationResult::FromJson(nlohmann::json::parse(R"({"passed":true,"rows":1,"checks":1,"failed":[1]})")));
}

// Many rows (the partition + per-bucket set path), short and long values: the
// duplicate count is exact, and a distinct count agrees with it.
TEST(Expectations, UniqueCountsEveryRepeatAmongManyValues) {
  const auto e = Parse("        columns:\n          id: {unique: true}\n");
  std::string csv = "id\n";
  std::set<std::string> distinct;
  std::uint64_t repeats = 0;
  for (int i = 0; i < 60000; ++i) {
    // every 7th row repeats an earlier value; some values are longer than a word
    const int v = i % 7 == 6 ? i / 3 : i;
    const std::string value = (v % 5 == 0 ? "long-value-" : "") + std::to_string(v);
    repeats += !distinct.insert(value).second;
    csv += value + "\n";
  }
  ASSERT_GT(repeats, 5000u);
  const Pass run = Evaluate(e, csv, {}, std::nullopt, 4096);
  const CheckFailure* f = Failed(run.result, "unique", "id");
  ASSERT_NE(f, nullptr) << run.result.ToJson().dump();
  EXPECT_EQ(f->observed["duplicate_values"], repeats);
  HashSet set;
  std::uint64_t again = 0;
  for (std::uint64_t h : {0ull, 1ull, 0ull, ~0ull, 1ull}) again += !set.Insert(h);  // 0 is a value like any other
  EXPECT_EQ(again, 2u);
  EXPECT_EQ(set.size(), 3u);
}

TEST(Expectations, ObserveAllSeesEveryColumnAndRefusesADuplicateHeader) {
  std::vector<std::string> seen;
  CsvProjector csv({}, [](std::string_view) { return Status{}; });
  csv.ObserveAll([&](std::span<const std::string_view> f) {
    seen.insert(seen.end(), f.begin(), f.end());
    return Status{};
  });
  ASSERT_TRUE(csv.Feed("a,b\n1,\"2\n3\"\n"));
  ASSERT_TRUE(csv.Finish());
  EXPECT_EQ(csv.observed_columns(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2\n3"}));
  CsvProjector dup({}, [](std::string_view) { return Status{}; });
  dup.ObserveAll([](std::span<const std::string_view>) { return Status{}; });
  EXPECT_FALSE(dup.Feed("a,a\n1,2\n"));
}


TEST(ValueHash, SipHashMatchesTheReferenceVectors) {
  // Aumasson and Bernstein: key 00..0f, message 00..(n-1).
  const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string m;
  for (char c = 0; c < 16; ++c) m += c;
  EXPECT_EQ(SipHash24(k0, k1, m.substr(0, 0)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(k0, k1, m.substr(0, 1)), 0x74f839c593dc67fdULL);
  EXPECT_EQ(SipHash24(k0, k1, m.substr(0, 8)), 0x93f5f5799a932462ULL);
  EXPECT_EQ(SipHash24(k0, k1, m.substr(0, 15)), 0xa129ca6149be45e5ULL);
}

// Exact keys: digit strings of 1..18 (leading zeros count) and any other value
// of up to 7 bytes never share a hash, whatever the input.
TEST(ValueHash, ShortValuesAndDigitStringsNeverCollide) {
  std::set<std::uint64_t> seen;
  std::size_t n = 0;
  const auto add = [&](const std::string& v) {
    ++n;
    EXPECT_TRUE(seen.insert(ValueHash(v)).second) << v;
  };
  for (int i = 0; i < 20000; ++i) {
    add(std::to_string(i));
    add("0" + std::to_string(i));
    add("x" + std::to_string(i) + "y");  // up to 7 bytes
  }
  for (const char* v : {"", "-1", "+1", "1.0", "007", "0007", "123456789012345678", "0123456789012345678",
                        "99999999", "100000000", "ab", "ab\n", "TRUE", "true"}) {
    add(v);
  }
  EXPECT_EQ(seen.size(), n);
  // A longer value is hashed under the per-process key, not a fixed one.
  EXPECT_NE(ValueHash("a value longer than a word"), SipHash24(0, 0, "a value longer than a word"));
  EXPECT_EQ(ValueHash("a value longer than a word"), ValueHash(std::string("a value longer ") + "than a word"));
}

TEST(RepeatCounter, DenseKeysStayInBitmapsSparseOnesSpillAndEveryRepeatCounts) {
  RepeatCounter dense;
  for (std::uint64_t k = 1000; k < 300000; ++k) dense.AddExact(k);
  for (std::uint64_t k = 1000; k < 1100; ++k) dense.AddExact(k);
  EXPECT_FALSE(dense.spilled());
  EXPECT_EQ(dense.Finish(), 100u);
  RepeatCounter sparse;  // keys 2^20 apart: a bitmap each, until they spill to the buckets
  std::uint64_t repeats = 0;
  for (std::uint64_t k = 0; k < 5000; ++k) sparse.AddExact(k << 20);
  for (std::uint64_t k = 0; k < 5000; k += 7, ++repeats) sparse.AddExact(k << 20);  // across the spill
  for (std::uint64_t k = 0; k < 500; ++k, ++repeats) sparse.AddHash(RepeatCounter::MixKey(k << 20));
  EXPECT_TRUE(sparse.spilled());
  EXPECT_EQ(sparse.Finish(), repeats);
}

// The evaluator against a plain reference (std::set, from_chars) on mixed
// values: every counter, summary and the duplicate count agree.
TEST(Expectations, AgreeWithAPlainReferenceOnMixedValues) {
  const auto e = Parse(
      "        columns:\n"
      "          v: {type: integer, min: -50, max: 5000, unique: true}\n"
      "          w: {allowed: [\"0\", \"1\", \"a-longer-allowed-value\"], unique: true}\n");
  const char* pool[] = {"", "0", "1", "-7", "+12", "007", "7", "1e3", "2.5", "-0.5", "abc", "true", "FALSE",
                        "123456789012", "1234567890123456789", "99999", "a-longer-allowed-value",
                        "a-longer-allowed-valuf", "\"q,1\"", "-999", "12345678", "00000000", "1234567a", "12345678/",
                        "123456789012345", "1234567890123456", "98765432101234x", "99999999:", "inf", "nan", "0x10", "--1", "+-1"};
  std::string csv = "v,w\n";
  std::vector<std::string> vs, ws;
  std::uint64_t state = 42;
  const auto next = [&] { return (state = state * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  for (int i = 0; i < 5000; ++i) {
    std::string v = pool[next() % std::size(pool)], w = pool[next() % std::size(pool)];
    if (next() % 4 == 0) v = std::to_string(next() % 100000);
    csv += v + "," + w + "\n";
    const auto unquote = [](std::string x) { return x.starts_with('"') ? std::string("q,1") : x; };
    vs.push_back(unquote(v));
    ws.push_back(unquote(w));
  }
  const ExpectationResult r = Evaluate(e, csv, {}, std::nullopt, 1000).result;
  // The reference.
  std::uint64_t wrong = 0, below = 0, above = 0, nulls = 0, numeric = 0, dup_v = 0, dup_w = 0, not_allowed = 0;
  double lo = 0, hi = 0;
  std::set<std::string> seen_v, seen_w;
  for (const std::string& v : vs) {
    if (v.empty()) {
      ++nulls;
      continue;
    }
    std::string_view t = v;
    if (t.front() == '+') t.remove_prefix(1);
    double d = 0;
    const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    const bool num = ec == std::errc() && ptr == t.data() + t.size() && std::isfinite(d);
    std::string_view digits = v;
    if (digits.front() == '-' || digits.front() == '+') digits.remove_prefix(1);
    const bool integer = num && !digits.empty() && digits.size() <= 19 &&
                         std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    wrong += !integer;  // type: integer
    wrong += !num;      // min/max need a number
    if (num) {
      lo = numeric == 0 ? d : std::min(lo, d);
      hi = numeric == 0 ? d : std::max(hi, d);
      ++numeric;
      below += d < -50;
      above += d > 5000;
    }
    dup_v += !seen_v.insert(v).second;
  }
  for (const std::string& w : ws) {
    if (w.empty()) continue;
    not_allowed += w != "0" && w != "1" && w != "a-longer-allowed-value";
    dup_w += !seen_w.insert(w).second;
  }
  const ColumnSummary& sv = r.summaries.at("v");
  EXPECT_EQ(sv.nulls, nulls);
  EXPECT_EQ(sv.numeric, numeric);
  EXPECT_EQ(sv.min, lo);
  EXPECT_EQ(sv.max, hi);
  const auto observed = [&](const char* check, const char* column, const char* field) -> std::uint64_t {
    const CheckFailure* f = Failed(r, check, column);
    return f == nullptr ? 0 : f->observed[field].get<std::uint64_t>();
  };
  EXPECT_EQ(observed("type", "v", "values_not_matching"), wrong);
  EXPECT_EQ(observed("min", "v", "values_below"), below);
  EXPECT_EQ(observed("max", "v", "values_above"), above);
  EXPECT_EQ(observed("unique", "v", "duplicate_values"), dup_v);
  EXPECT_EQ(observed("unique", "w", "duplicate_values"), dup_w);
  EXPECT_EQ(observed("allowed", "w", "values_not_allowed"), not_allowed);
  EXPECT_GT(wrong * below * above * dup_v * dup_w * not_allowed, 0u);  // every check was exercised
}

}  // namespace
}  // namespace cordon::orchestrator
