#include "cordon/yaml/strict_yaml.h"

#include <gtest/gtest.h>

namespace cordon::yaml {
namespace {

TEST(StrictYaml, BuildsTreeWithMarks) {
  Document doc = Load("a: 1\nb:\n  - x\n  - 'y'\n");
  ASSERT_TRUE(doc.root.has_value()) << doc.diagnostics.size();
  const Node& root = *doc.root;
  ASSERT_EQ(root.kind, Node::Kind::kMap);
  ASSERT_EQ(root.entries.size(), 2u);
  EXPECT_EQ(root.entries[0].key.value, "a");
  EXPECT_EQ(root.entries[0].value.mark.line, 1);
  EXPECT_EQ(root.entries[0].value.mark.column, 4);
  const Node& list = root.entries[1].value;
  ASSERT_EQ(list.kind, Node::Kind::kSequence);
  EXPECT_TRUE(list.items[0].plain);
  EXPECT_FALSE(list.items[1].plain);
  EXPECT_EQ(list.items[1].mark.line, 4);
  EXPECT_EQ(root.subtree_nodes, 7u);
}

TEST(StrictYaml, ResolvesCoreSchema) {
  Document doc = Load("[~, null, true, False, 12, -3, 0x1f, 0o17, 1.5, .inf, 1e3, abc, '12', 1.2.3]");
  ASSERT_TRUE(doc.root.has_value());
  const std::vector<ScalarType> want = {
      ScalarType::kNull, ScalarType::kNull, ScalarType::kBool, ScalarType::kBool,
      ScalarType::kInt, ScalarType::kInt, ScalarType::kInt, ScalarType::kInt,
      ScalarType::kFloat, ScalarType::kFloat, ScalarType::kFloat, ScalarType::kString,
      ScalarType::kString, ScalarType::kString};
  ASSERT_EQ(doc.root->items.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(Resolve(doc.root->items[i]), want[i]) << doc.root->items[i].value;
  }
}

TEST(StrictYaml, AliasesWithinBudgetAreExpanded) {
  Document doc = Load("base: &b {x: 1}\ncopy: *b\n");
  ASSERT_TRUE(doc.root.has_value());
  const Node& copy = doc.root->entries[1].value;
  ASSERT_EQ(copy.kind, Node::Kind::kMap);
  EXPECT_EQ(copy.entries[0].value.value, "1");
  EXPECT_EQ(copy.mark.line, 2);
}

TEST(StrictYaml, BillionLaughsIsRefusedQuickly) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
    prev = c;
  }
  Document doc = Load(bomb);
  EXPECT_FALSE(doc.root.has_value());
  ASSERT_EQ(doc.diagnostics.size(), 1u);
  EXPECT_NE(doc.diagnostics[0].message.find("alias bomb"), std::string::npos);
}

TEST(StrictYaml, DepthLimit) {
  Limits limits;
  limits.max_depth = 8;
  EXPECT_TRUE(Load(std::string(8, '[') + std::string(8, ']'), limits).root.has_value());
  Document doc = Load(std::string(9, '[') + std::string(9, ']'), limits);
  EXPECT_FALSE(doc.root.has_value());
  EXPECT_NE(doc.diagnostics.at(0).message.find("deeper than 8"), std::string::npos);
  // yaml-cpp's own recursion guard must turn a very deep document into an error, not a crash.
  EXPECT_FALSE(Load(std::string(100000, '[')).root.has_value());
}

TEST(StrictYaml, DuplicateKeysReportBothLines) {
  Document doc = Load("a: 1\nb: 2\na: 3\n");
  ASSERT_EQ(doc.diagnostics.size(), 1u);
  EXPECT_EQ(doc.diagnostics[0].mark.line, 3);
  EXPECT_EQ(doc.diagnostics[0].message, "duplicate key 'a' (first defined at line 1)");
}

TEST(StrictYaml, TextChecks) {
  EXPECT_NE(Load("a: \xff\n").diagnostics.at(0).message.find("invalid UTF-8"), std::string::npos);
  EXPECT_NE(Load("a: \xc0\xaf\n").diagnostics.at(0).message.find("overlong"), std::string::npos);
  EXPECT_NE(Load("a: \xed\xa0\x80\n").diagnostics.at(0).message.find("UTF-8"), std::string::npos);
  Document nul = Load(std::string("a: b\nc: d\0e\n", 12));
  ASSERT_EQ(nul.diagnostics.size(), 1u);
  EXPECT_EQ(nul.diagnostics[0].mark.line, 2);
  EXPECT_EQ(nul.diagnostics[0].mark.column, 5);
  EXPECT_TRUE(Load("name: \"caf\xc3\xa9 \xf0\x9f\x98\x80\"\n").root.has_value());
}

TEST(StrictYaml, SizeLimit) {
  Limits limits;
  limits.max_bytes = 10;
  Document doc = Load("a: 12345678", limits);
  EXPECT_FALSE(doc.root.has_value());
  EXPECT_EQ(doc.diagnostics.at(0).message, "file is 11 bytes; the limit is 10");
}

TEST(MapReader, UnknownKeySuggestsClosest) {
  Document doc = Load("imgae: x\nzzz: 1\n");
  ASSERT_TRUE(doc.root.has_value());
  Diagnostics d;
  MapReader m(d, *doc.root, "spec.trainer");
  (void)m.Optional("image");
  (void)m.Optional("command");
  m.Finish();
  ASSERT_EQ(d.list().size(), 2u);
  EXPECT_EQ(d.list()[0].message,
            "unknown field 'imgae' in spec.trainer (did you mean 'image'?); allowed: image, command");
  EXPECT_EQ(d.list()[1].message, "unknown field 'zzz' in spec.trainer; allowed: image, command");
}

TEST(FormatDiagnostic, FileLineColumn) {
  EXPECT_EQ(FormatDiagnostic("x.yaml", {{3, 7}, "boom"}), "x.yaml:3:7: error: boom");
}

}  // namespace
}  // namespace cordon::yaml
