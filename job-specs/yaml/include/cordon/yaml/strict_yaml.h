// A strict YAML loader for untrusted files (specs, config, policy).
//
// yaml-cpp's node API silently accepts duplicate keys and resolves aliases into
// shared nodes that a walker then expands without bound. This loader consumes
// yaml-cpp's event stream instead and builds a small tree in which every node
// carries its line and column, and it refuses, with a diagnostic:
//   - files over Limits::max_bytes, bytes that are not UTF-8, control characters;
//   - more than one document; explicit tags;
//   - duplicate map keys and non-scalar keys;
//   - nesting deeper than Limits::max_depth;
//   - more than Limits::max_nodes nodes *after* alias expansion (alias bombs).
//
// The typed reader beneath (MapReader) maps the tree onto structs, reporting
// unknown keys (with a did-you-mean), wrong types and out-of-range values, and
// keeps going so that a user sees every error at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cordon::yaml {

struct Mark {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

struct Diagnostic {
  Mark mark;
  std::string message;
};

// "FILE:LINE:COL: error: MESSAGE"
[[nodiscard]] std::string FormatDiagnostic(std::string_view file, const Diagnostic& diagnostic);
// Every diagnostic formatted as above, one a line (no trailing newline).
[[nodiscard]] std::string FormatDiagnostics(std::string_view file, const std::vector<Diagnostic>& diagnostics);

struct MapEntry;

struct Node {
  enum class Kind { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  Mark mark;
  std::string value;   // scalars
  bool plain = false;  // an unquoted scalar (so "5" and 5 differ)
  std::vector<Node> items;                     // sequences
  std::vector<MapEntry> entries;  // maps, in file order; keys are scalars
  std::size_t subtree_nodes = 1;  // this node and all beneath it
};

struct MapEntry {
  Node key;
  Node value;
};

struct Limits {
  std::size_t max_bytes = 1024 * 1024;
  std::size_t max_depth = 32;
  std::size_t max_nodes = 20'000;
  std::size_t max_scalar_bytes = 64 * 1024;
};

struct Document {
  std::optional<Node> root;  // absent when the file is unusable (diagnostics say why)
  std::vector<Diagnostic> diagnostics;
};

[[nodiscard]] Document Load(std::string_view text, const Limits& limits = {});

// Collects diagnostics while typed readers walk a tree.
class Diagnostics final {
 public:
  void Add(const Node& at, std::string message) { Add(at.mark, std::move(message)); }
  void Add(Mark mark, std::string message) { list_.push_back({mark, std::move(message)}); }
  [[nodiscard]] bool empty() const { return list_.empty(); }
  [[nodiscard]] const std::vector<Diagnostic>& list() const { return list_; }
  [[nodiscard]] std::vector<Diagnostic> Take() { return std::move(list_); }

 private:
  std::vector<Diagnostic> list_;
};

// Loads `text` under `limits` and, when that yields a tree, maps it with
// `read(Diagnostics&, const Node&)`. `diagnostics` receives the loader's, then
// the reader's; the value is returned only when there is none at all.
template <typename Read>
[[nodiscard]] auto LoadAndRead(std::string_view text, const Limits& limits, std::vector<Diagnostic>& diagnostics,
                               Read&& read) -> std::optional<std::invoke_result_t<Read&, Diagnostics&, const Node&>> {
  Document doc = Load(text, limits);
  diagnostics = std::move(doc.diagnostics);
  if (!doc.root) return std::nullopt;
  Diagnostics d;
  auto value = read(d, *doc.root);
  for (auto& diagnostic : d.Take()) diagnostics.push_back(std::move(diagnostic));
  if (!diagnostics.empty()) return std::nullopt;
  return value;
}

// How a plain scalar resolves under the YAML 1.2 core schema.
enum class ScalarType { kNull, kBool, kInt, kFloat, kString };
[[nodiscard]] ScalarType Resolve(const Node& scalar);
[[nodiscard]] std::string_view DescribeNode(const Node& node);  // "a string", "a map", ...

// Reads typed values out of nodes; every failure becomes a diagnostic naming
// `where` (a dotted field path like "spec.resources.pids").
[[nodiscard]] std::optional<std::string> ReadString(Diagnostics& d, const Node& n, std::string_view where);
[[nodiscard]] std::optional<std::int64_t> ReadInt(Diagnostics& d, const Node& n, std::string_view where,
                                                  std::int64_t min, std::int64_t max);
[[nodiscard]] std::optional<double> ReadNumber(Diagnostics& d, const Node& n, std::string_view where);
[[nodiscard]] std::optional<bool> ReadBool(Diagnostics& d, const Node& n, std::string_view where);
[[nodiscard]] std::optional<std::vector<std::string>> ReadStringList(Diagnostics& d, const Node& n,
                                                                     std::string_view where,
                                                                     std::size_t max_items);
[[nodiscard]] std::optional<std::vector<std::pair<std::string, std::string>>> ReadStringMap(
    Diagnostics& d, const Node& n, std::string_view where, std::size_t max_items);

// A view of one map node: fields are looked up by name, and Finish() reports
// every key that nobody asked for as unknown (listing what is allowed).
class MapReader final {
 public:
  // Reports a diagnostic (and reads as an empty map) when `node` is not a map.
  MapReader(Diagnostics& diagnostics, const Node& node, std::string where);
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;
  ~MapReader() = default;

  // The value node of `key`, or nullptr. Required() also reports a missing key.
  [[nodiscard]] const Node* Optional(std::string_view key);
  [[nodiscard]] const Node* Required(std::string_view key);
  // "WHERE.key" — for diagnostics of nested values.
  [[nodiscard]] std::string Path(std::string_view key) const;
  [[nodiscard]] const Node& node() const { return node_; }
  // Reports unknown keys; call once, after every Optional/Required.
  void Finish();

 private:
  Diagnostics& diagnostics_;
  const Node& node_;
  std::string where_;
  std::vector<std::string> known_;
  bool is_map_ = false;
};

}  // namespace cordon::yaml
