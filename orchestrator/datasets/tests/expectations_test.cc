// The `expect:` evaluator through the real CSV projector: each check passes on
// good data and fails with its observed value (never a field's text) on bad.
#include "cordon/datasets/expectations.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cordon::orchestrator
