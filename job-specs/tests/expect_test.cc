// `expect:` on an input: the valid form maps onto Expectations; each malformed
// form is one diagnostic naming the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cordon/specs/spec.h"

namespace cordon::specs {
namespace {

std::string Spec(const std::string& expect) {
  return "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: t}\nspec:\n"
         "  trainer: {image: /srv/img, command: [/bin/true]}\n"
         "  inputs:\n    - name: d\n      path: /srv/d.sealed\n      expect:\n" + expect +
         "  output: {path: /srv/out, key: kms://local/m}\n";
}

TEST(Expect, TheIssueExampleParses) {
  const ParseResult r = ParseSpec(Spec(
      "        rows: {min: 1000, max: 10000000}\n"
      "        columns:\n"
      "          age: {type: integer, min: 0, max: 120, max_null_fraction: 0.0}\n"
      "          churned: {allowed: [\"0\", \"1\"]}\n"
      "          id: {unique: true}\n"
      "        max_drift: 0.2\n"));
  ASSERT_TRUE(r.job) << (r.diagnostics.empty() ? "" : r.diagnostics[0].message);
  const auto& e = r.job->inputs.at(0).expect;
  ASSERT_TRUE(e);
  EXPECT_EQ(e->min_rows, 1000u);
  EXPECT_EQ(e->max_rows, 10000000u);
  ASSERT_EQ(e->columns.size(), 3u);
  EXPECT_EQ(e->columns[0].name, "age");
  EXPECT_EQ(e->columns[0].type, ColumnType::kInteger);
  EXPECT_EQ(e->columns[0].max, 120.0);
  EXPECT_EQ(e->columns[0].max_null_fraction, 0.0);
  EXPECT_EQ(e->columns[1].allowed->size(), 2u);
  EXPECT_TRUE(e->columns[2].unique);
  EXPECT_EQ(e->max_drift, 0.2);
  // rows 1, age: present+type+min+max+nulls 5, churned 2, id 2, drift 1
  EXPECT_EQ(e->CheckCount(), 11u);
  EXPECT_EQ(ToJson(*r.job)["spec"]["inputs"][0]["expect"]["columns"]["age"]["type"], "integer");
}

TEST(Expect, NoExpectMeansNone) {
  const ParseResult r = ParseSpec(Spec("        max_drift: 1\n"));
  ASSERT_TRUE(r.job);
  const ParseResult plain = ParseSpec(
      "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: t}\nspec:\n"
      "  trainer: {image: /srv/img, command: [/bin/true]}\n"
      "  inputs: [{name: d, path: /srv/d.sealed}]\n  output: {path: /srv/out, key: kms://local/m}\n");
  ASSERT_TRUE(plain.job);
  EXPECT_FALSE(plain.job->inputs[0].expect);
}

struct Bad {
  std::string expect;
  const char* message;  // a substring of the one diagnostic
};

class BadExpect : public ::testing::TestWithParam<Bad> {};

TEST_P(BadExpect, OneDiagnosticNamingTheField) {
  const ParseResult r = ParseSpec(Spec(GetParam().expect));
  EXPECT_FALSE(r.job);
  ASSERT_EQ(r.diagnostics.size(), 1u) << r.diagnostics[0].message;
  EXPECT_NE(r.diagnostics[0].message.find(GetParam().message), std::string::npos) << r.diagnostics[0].message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadExpect,
    ::testing::Values(
        Bad{"        rows: {min: 5, max: 1}\n", "expect.rows: min (5) is greater than max (1)"},
        Bad{"        rows: {}\n", "expect.rows: give min, max or both"},
        Bad{"        rows: {min: -1}\n", "expect.rows.min"},
        Bad{"        rows: {mn: 1}\n", "unknown"},
        Bad{"        columns: [age]\n", "expect.columns: expected a map"},
        Bad{"        columns: {age: {type: int}}\n", "'int' is not a type"},
        Bad{"        columns: {age: {min: 3, max: 2}}\n", "min is greater than max"},
        Bad{"        columns: {age: {min: x}}\n", "expect.columns.age.min: expected a number"},
        Bad{"        columns: {age: {max_null_fraction: 1.5}}\n", "out of range: allowed 0..1"},
        Bad{"        columns: {age: {allowed: []}}\n", "an empty set"},
        Bad{"        columns: {age: {allowed: [a, a]}}\n", "listed twice"},
        Bad{"        columns: {age: {unique: yes please}}\n", "expect.columns.age.unique"},
        Bad{"        columns: {age: {type: string, min: 1}}\n", "min/max need a numeric column"},
        Bad{"        columns: {age: {typo: 1}}\n", "unknown"},
        Bad{"        max_drift: -0.1\n", "expect.max_drift"},
        Bad{"        {}\n", "no checks"},
        Bad{"        [1]\n", "expect"},
        Bad{"        columns: {" + std::string(300, 'c') + ": {unique: true}}\n", "a column name must be 1..256 bytes"}));

}  // namespace
}  // namespace cordon::specs
