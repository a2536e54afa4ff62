#include "cordon/datasets/csv_projection.h"

#include <random>

#include <gtest/gtest.h>

namespace cordon::orchestrator {
namespace {

struct Projection {
  Status status;
  std::string output;
};

// Feeds `input` in pieces of `piece` bytes (0 = all at once).
Projection Project(std::vector<std::string> columns, std::string_view input, std::size_t piece = 0,
                   CsvProjector::Limits limits = {}) {
  Projection p;
  CsvProjector projector(std::move(columns), [&](std::string_view s) {
    p.output += s;
    return Status{};
  }, limits);
  const std::size_t step = piece == 0 ? std::max<std::size_t>(input.size(), 1) : piece;
  for (std::size_t at = 0; at < input.size(); at += step) {
    p.status = projector.Feed(input.substr(at, step));
    if (!p.status) return p;
  }
  p.status = projector.Finish();
  return p;
}

const char* kCustomers =
    "name,email,ssn,age,tenure,spend,churned\r\n"
    "\"Doe, Jane\",jane@example.com,123-45-6789,34,12,99.5,0\r\n"
    "\"O\"\"Brien\",ob@example.com,987-65-4321,51,3,\"1,204.00\",1\r\n"
    "\"Multi\nLine\",m@example.com,555-55-5555,29,40,10,0\r\n";

TEST(CsvProjection, ProjectsAndReordersColumns) {
  Projection p = Project({"churned", "age", "spend"}, kCustomers);
  ASSERT_TRUE(p.status.has_value()) << p.status.error().message;
  EXPECT_EQ(p.output, "churned,age,spend\n0,34,99.5\n1,51,\"1,204.00\"\n0,29,10\n");
}

TEST(CsvProjection, DroppedColumnsNeverReachTheSink) {
  Projection p = Project({"age", "tenure", "spend", "churned"}, kCustomers);
  ASSERT_TRUE(p.status.has_value());
  for (const char* secret : {"Jane", "jane@", "123-45-6789", "Brien", "Multi", "555-55"}) {
    EXPECT_EQ(p.output.find(secret), std::string::npos) << secret;
  }
}

TEST(CsvProjection, QuotedFieldsAreRequotedWhenSelected) {
  Projection p = Project({"name", "ssn"}, kCustomers);
  ASSERT_TRUE(p.status.has_value());
  EXPECT_EQ(p.output,
            "name,ssn\n\"Doe, Jane\",123-45-6789\n\"O\"\"Brien\",987-65-4321\n\"Multi\nLine\",555-55-5555\n");
}

TEST(CsvProjection, ChunkBoundariesDoNotMatter) {
  const Projection whole = Project({"spend", "name"}, kCustomers);
  ASSERT_TRUE(whole.status.has_value());
  for (std::size_t piece : {1u, 2u, 3u, 7u, 64u}) {
    const Projection split = Project({"spend", "name"}, kCustomers, piece);
    ASSERT_TRUE(split.status.has_value()) << piece;
    EXPECT_EQ(split.output, whole.output) << piece;
  }
}

TEST(CsvProjection, LastRecordWithoutNewlineAndEmptyFields) {
  Projection p = Project({"b", "c"}, "a,b,c\n1,,3\n4,5,");
  ASSERT_TRUE(p.status.has_value()) << p.status.error().message;
  EXPECT_EQ(p.output, "b,c\n,3\n5,\n");
  Projection quoted_end = Project({"a"}, "a\n\"x\"");
  ASSERT_TRUE(quoted_end.status.has_value());
  EXPECT_EQ(quoted_end.output, "a\nx\n");
}

struct Malformed {
  const char* name;
  std::vector<std::string> columns;
  std::string input;
  const char* message;
};

TEST(CsvProjection, MalformedInputNamesTheRow) {
  const Malformed cases[] = {
      {"missing column", {"age", "income"}, "name,age\nx,1\n",
       "CSV row 1: column 'income' is not in the header (the header has: name, age)"},
      {"too few fields", {"a"}, "a,b,c\n1,2,3\n1,2\n", "CSV row 3: has 2 fields; the header has 3"},
      {"too many fields", {"a"}, "a,b\n1,2\n1,2,3\n", "CSV row 3: has 3 fields; the header has 2"},
      {"quote inside unquoted", {"a"}, "a,b\n1,x\"y\n", "CSV row 2: field 2: a quote inside an unquoted field"},
      {"text after closing quote", {"a"}, "a,b\n\"1\"x,2\n", "CSV row 2: field 1: text after a closing quote"},
      {"unterminated quote", {"a"}, "a,b\n1,\"open\n", "CSV row 2: unterminated quoted field 2 at end of data"},
      {"bare carriage return", {"a"}, "a,b\r1,2\n", "CSV row 1: carriage return not followed by a line feed"},
      {"empty data", {"a"}, "", "CSV row 1: the data is empty: expected a header row"},
      {"ambiguous header", {"a"}, "a,b,a\n1,2,3\n", "CSV row 1: column 'a' appears twice in the header"},
      {"blank line", {"a"}, "a,b\n1,2\n\n3,4\n", "CSV row 3: has 1 fields; the header has 2"},
  };
  for (const Malformed& m : cases) {
    Projection p = Project(m.columns, m.input);
    ASSERT_FALSE(p.status.has_value()) << m.name;
    EXPECT_EQ(p.status.error().code, Errc::kInvalidData) << m.name;
    EXPECT_NE(p.status.error().message.find(m.message), std::string::npos)
        << m.name << ": " << p.status.error().message;
  }
}

TEST(CsvProjection, FieldLengthLimitAppliesToDroppedFieldsToo) {
  CsvProjector::Limits limits;
  limits.max_field_bytes = 8;
  Projection p = Project({"a"}, "a,b\n1,123456789\n", 0, limits);
  ASSERT_FALSE(p.status.has_value());
  EXPECT_NE(p.status.error().message.find("CSV row 2: field 2 is longer than 8 bytes"), std::string::npos);
}

TEST(CsvProjection, SinkErrorStopsTheProjection) {
  CsvProjector projector({"a"}, [](std::string_view) { return Status(Fail(Errc::kIo, "disk full")); });
  ASSERT_TRUE(projector.Feed("a\n1\n").has_value());  // buffered, not yet flushed
  auto finished = projector.Finish();
  ASSERT_FALSE(finished.has_value());
  EXPECT_EQ(finished.error().message, "disk full");
  EXPECT_FALSE(projector.Feed("2\n").has_value());
}

TEST(CsvProjection, LargeRandomInputMatchesAReferenceParse) {
  std::mt19937 rng(42);
  std::string input = "id,secret,value\n";
  std::string expected = "value,id\n";
  for (int row = 0; row < 20000; ++row) {
    const std::string id = std::to_string(row);
    const std::string value = (rng() % 3 == 0) ? "\"v,\"\"" + id + "\"" : "v" + id;
    input += id + ",\"SECRET\nMARK" + id + "\"," + value + ((row % 2) ? "\r\n" : "\n");
    expected += value + "," + id + "\n";  // a quoted value needs quoting again on output
  }
  Projection p = Project({"value", "id"}, input, 4096);
  ASSERT_TRUE(p.status.has_value()) << p.status.error().message;
  EXPECT_EQ(p.output, expected);
  EXPECT_EQ(p.output.find("SECRET"), std::string::npos);
}

}  // namespace
}  // namespace cordon::orchestrator
