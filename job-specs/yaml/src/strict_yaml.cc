#include "cordon/yaml/strict_yaml.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <sstream>

namespace cordon::yaml {
namespace {

Mark FromYaml(const YAML::Mark& mark) { return Mark{mark.line + 1, mark.column + 1}; }

std::string Hex2(unsigned char c) {
  constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[c >> 4], kDigits[c & 0xF]};
}

// Thrown from the event handler to abandon a document that breaks a limit.
struct Abandon {
  Diagnostic diagnostic;
};

// Checks UTF-8 well-formedness (no overlongs, surrogates or > U+10FFFF) and
// refuses control characters other than TAB, LF and CR.
std::optional<Diagnostic> CheckText(std::string_view text) {
  int line = 1;
  int column = 1;
  std::size_t i = 0;
  const auto bad = [&](std::string what) {
    return Diagnostic{{line, column}, std::move(what)};
  };
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n') {
        ++line;
        column = 1;
        ++i;
        continue;
      }
      if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
        return bad("control character 0x" + Hex2(c) + " is not allowed");
      }
      ++i;
      ++column;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) { length = 2; code = c & 0x1Fu; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { length = 3; code = c & 0x0Fu; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { length = 4; code = c & 0x07u; min = 0x10000; }
    else return bad("invalid UTF-8 byte 0x" + Hex2(c) + ": the file must be UTF-8");
    if (i + length > text.size()) return bad("truncated UTF-8 sequence: the file must be UTF-8");
    for (std::size_t k = 1; k < length; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return bad("invalid UTF-8 sequence: the file must be UTF-8");
      code = (code << 6) | (cc & 0x3Fu);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
      return bad("invalid UTF-8 sequence (overlong or out of range): the file must be UTF-8");
    }
    i += length;
    ++column;
  }
  return std::nullopt;
}

class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(const Limits& limits, std::vector<Diagnostic>& diagnostics)
      : limits_(limits), diagnostics_(diagnostics) {}

  std::optional<Node> TakeRoot() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Node node;
    node.kind = Node::Kind::kNull;
    node.mark = FromYaml(mark);
    Emit(std::move(node), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    const auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw Abandon{{FromYaml(mark), "alias to an unknown anchor"}};
    Node copy = it->second;
    copy.mark = FromYaml(mark);
    Emit(std::move(copy), 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Node node;
    node.kind = Node::Kind::kScalar;
    node.mark = FromYaml(mark);
    node.plain = tag == "?";
    CheckTag(node.mark, tag);
    if (value.size() > limits_.max_scalar_bytes) {
      diagnostics_.push_back({node.mark, "value is " + std::to_string(value.size()) +
                                             " bytes; the limit is " +
                                             std::to_string(limits_.max_scalar_bytes)});
    } else {
      node.value = value;
    }
    Emit(std::move(node), anchor);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(Node::Kind::kSequence, FromYaml(mark), tag, anchor);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(Node::Kind::kMap, FromYaml(mark), tag, anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    Node node;
    YAML::anchor_t anchor = 0;
    std::optional<Node> pending_key;  // maps: the key waiting for its value
    bool skip_value = false;          // maps: the pending key was refused
  };

  void CheckTag(Mark mark, const std::string& tag) {
    if (tag.empty() || tag == "?" || tag == "!") return;
    diagnostics_.push_back({mark, "explicit YAML tag '" + tag + "' is not allowed"});
  }

  void Open(Node::Kind kind, Mark mark, const std::string& tag, YAML::anchor_t anchor) {
    CheckTag(mark, tag);
    if (stack_.size() >= limits_.max_depth) {
      throw Abandon{{mark, "nesting is deeper than " + std::to_string(limits_.max_depth) +
                               " levels"}};
    }
    Frame frame;
    frame.node.kind = kind;
    frame.node.mark = mark;
    frame.anchor = anchor;
    stack_.push_back(std::move(frame));
    Count(mark, 1);
  }

  void Close() {
    Frame frame = std::move(stack_.back());
    stack_.pop_back();
    Attach(std::move(frame.node), frame.anchor);
  }

  void Count(Mark mark, std::size_t nodes) {
    total_nodes_ += nodes;
    if (total_nodes_ > limits_.max_nodes) {
      throw Abandon{{mark, "document has more than " + std::to_string(limits_.max_nodes) +
                               " nodes after alias expansion (an alias bomb?)"}};
    }
  }

  void Emit(Node node, YAML::anchor_t anchor) {
    Count(node.mark, node.subtree_nodes);
    Attach(std::move(node), anchor);
  }

  void Attach(Node node, YAML::anchor_t anchor) {
    if (anchor != 0) anchors_[anchor] = node;
    if (stack_.empty()) {
      root_ = std::move(node);
      return;
    }
    Frame& parent = stack_.back();
    parent.node.subtree_nodes += node.subtree_nodes;
    if (parent.node.kind == Node::Kind::kSequence) {
      parent.node.items.push_back(std::move(node));
      return;
    }
    if (!parent.pending_key) {
      parent.skip_value = false;
      if (node.kind != Node::Kind::kScalar) {
        diagnostics_.push_back({node.mark, "map keys must be plain strings, not " +
                                               std::string(DescribeNode(node))});
        parent.skip_value = true;
      } else {
        for (const auto& [key, value] : parent.node.entries) {
          if (key.value == node.value) {
            diagnostics_.push_back({node.mark, "duplicate key '" + node.value +
                                                   "' (first defined at line " +
                                                   std::to_string(key.mark.line) + ")"});
            parent.skip_value = true;
            break;
          }
        }
      }
      parent.pending_key = std::move(node);
      return;
    }
    if (!parent.skip_value) parent.node.entries.push_back({std::move(*parent.pending_key), std::move(node)});
    parent.pending_key.reset();
  }

  const Limits& limits_;
  std::vector<Diagnostic>& diagnostics_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, Node> anchors_;
  std::optional<Node> root_;
  std::size_t total_nodes_ = 0;
};

std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool AllOf(std::string_view s, bool (*pred)(char)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsOctal(char c) { return c >= '0' && c <= '7'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool IsCoreFloat(std::string_view s) {
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "-.inf" || s == "+.inf" || s == "-.Inf" ||
      s == "+.Inf" || s == "-.INF" || s == "+.INF" || s == ".nan" || s == ".NaN" || s == ".NAN") {
    return true;
  }
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  std::size_t int_digits = 0;
  while (i < s.size() && IsDigit(s[i])) { ++i; ++int_digits; }
  std::size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) { ++i; ++frac_digits; }
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < s.size() && IsDigit(s[i])) { ++i; ++exp_digits; }
    if (exp_digits == 0) return false;
  }
  return i == s.size();
}

std::string Quote(std::string_view s) { return "'" + std::string(s) + "'"; }

}  // namespace

std::string FormatDiagnostic(std::string_view file, const Diagnostic& diagnostic) {
  return std::string(file) + ":" + std::to_string(diagnostic.mark.line) + ":" +
         std::to_string(diagnostic.mark.column) + ": error: " + diagnostic.message;
}

std::string FormatDiagnostics(std::string_view file, const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& diagnostic : diagnostics) {
    if (!out.empty()) out += "\n";
    out += FormatDiagnostic(file, diagnostic);
  }
  return out;
}

Document Load(std::string_view text, const Limits& limits) {
  Document doc;
  if (text.size() > limits.max_bytes) {
    doc.diagnostics.push_back({{1, 1}, "file is " + std::to_string(text.size()) +
                                           " bytes; the limit is " +
                                           std::to_string(limits.max_bytes)});
    return doc;
  }
  if (auto bad = CheckText(text)) {
    doc.diagnostics.push_back(std::move(*bad));
    return doc;
  }
  std::istringstream stream{std::string(text)};
  TreeBuilder builder(limits, doc.diagnostics);
  try {
    YAML::Parser parser(stream);
    if (!parser.HandleNextDocument(builder)) {
      doc.diagnostics.push_back({{1, 1}, "file is empty: expected a YAML map"});
      return doc;
    }
    doc.root = builder.TakeRoot();
    TreeBuilder extra(limits, doc.diagnostics);
    if (parser.HandleNextDocument(extra)) {
      const std::optional<Node> second = extra.TakeRoot();
      doc.diagnostics.push_back({second ? second->mark : Mark{1, 1},
                                 "the file holds more than one YAML document; expected exactly one"});
    }
  } catch (const Abandon& abandon) {
    doc.root.reset();
    doc.diagnostics.push_back(abandon.diagnostic);
  } catch (const YAML::Exception& e) {
    doc.root.reset();
    doc.diagnostics.push_back({FromYaml(e.mark), "YAML syntax error: " + e.msg});
  }
  return doc;
}

ScalarType Resolve(const Node& node) {
  if (node.kind == Node::Kind::kNull) return ScalarType::kNull;
  if (node.kind != Node::Kind::kScalar || !node.plain) return ScalarType::kString;
  const std::string_view s = node.value;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return ScalarType::kNull;
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
    return ScalarType::kBool;
  }
  std::string_view digits = s;
  if (digits.front() == '-' || digits.front() == '+') digits.remove_prefix(1);
  if (AllOf(digits, IsDigit)) return ScalarType::kInt;
  if (s.starts_with("0o") && AllOf(s.substr(2), IsOctal)) return ScalarType::kInt;
  if (s.starts_with("0x") && AllOf(s.substr(2), IsHex)) return ScalarType::kInt;
  if (IsCoreFloat(s)) return ScalarType::kFloat;
  return ScalarType::kString;
}

std::string_view DescribeNode(const Node& node) {
  switch (node.kind) {
    case Node::Kind::kNull: return "null (an empty value)";
    case Node::Kind::kSequence: return "a list";
    case Node::Kind::kMap: return "a map";
    case Node::Kind::kScalar: break;
  }
  switch (Resolve(node)) {
    case ScalarType::kNull: return "null (an empty value)";
    case ScalarType::kBool: return "a boolean";
    case ScalarType::kInt: return "an integer";
    case ScalarType::kFloat: return "a number";
    case ScalarType::kString: break;
  }
  return "a string";
}

std::optional<std::string> ReadString(Diagnostics& d, const Node& n, std::string_view where) {
  const ScalarType type = Resolve(n);
  if (n.kind != Node::Kind::kScalar || type != ScalarType::kString) {
    std::string message = std::string(where) + ": expected a string, got " +
                          std::string(DescribeNode(n));
    if (n.kind == Node::Kind::kScalar && type != ScalarType::kNull) {
      message += " " + Quote(n.value) + " (quote it to make it a string: \"" + n.value + "\")";
    }
    d.Add(n, std::move(message));
    return std::nullopt;
  }
  if (n.value.find('\0') != std::string::npos) {
    d.Add(n, std::string(where) + ": contains a NUL character");
    return std::nullopt;
  }
  return n.value;
}

std::optional<std::int64_t> ReadInt(Diagnostics& d, const Node& n, std::string_view where,
                                    std::int64_t min, std::int64_t max) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  if (Resolve(n) != ScalarType::kInt || n.value.starts_with("0o") || n.value.starts_with("0x")) {
    d.Add(n, std::string(where) + ": expected a decimal integer in " + range + ", got " +
                 std::string(DescribeNode(n)));
    return std::nullopt;
  }
  std::string_view text = n.value;
  if (text.front() == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max) {
    d.Add(n, std::string(where) + ": " + n.value + " is out of range: allowed " + range);
    return std::nullopt;
  }
  return value;
}

std::optional<double> ReadNumber(Diagnostics& d, const Node& n, std::string_view where) {
  const ScalarType type = Resolve(n);
  if (type != ScalarType::kInt && type != ScalarType::kFloat) {
    d.Add(n, std::string(where) + ": expected a number, got " + std::string(DescribeNode(n)));
    return std::nullopt;
  }
  std::string_view text = n.value;
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value)) {
    d.Add(n, std::string(where) + ": " + Quote(n.value) + " is not a finite decimal number");
    return std::nullopt;
  }
  return value;
}

std::optional<bool> ReadBool(Diagnostics& d, const Node& n, std::string_view where) {
  if (Resolve(n) != ScalarType::kBool) {
    d.Add(n, std::string(where) + ": expected true or false, got " + std::string(DescribeNode(n)));
    return std::nullopt;
  }
  return n.value[0] == 't' || n.value[0] == 'T';
}

std::optional<std::vector<std::string>> ReadStringList(Diagnostics& d, const Node& n,
                                                       std::string_view where,
                                                       std::size_t max_items) {
  if (n.kind != Node::Kind::kSequence) {
    d.Add(n, std::string(where) + ": expected a list, got " + std::string(DescribeNode(n)));
    return std::nullopt;
  }
  if (n.items.size() > max_items) {
    d.Add(n, std::string(where) + ": " + std::to_string(n.items.size()) +
                 " items; the limit is " + std::to_string(max_items));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    auto value = ReadString(d, n.items[i], std::string(where) + "[" + std::to_string(i) + "]");
    if (value) out.push_back(std::move(*value));
    else ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> ReadStringMap(
    Diagnostics& d, const Node& n, std::string_view where, std::size_t max_items) {
  if (n.kind != Node::Kind::kMap) {
    d.Add(n, std::string(where) + ": expected a map, got " + std::string(DescribeNode(n)));
    return std::nullopt;
  }
  if (n.entries.size() > max_items) {
    d.Add(n, std::string(where) + ": " + std::to_string(n.entries.size()) +
                 " entries; the limit is " + std::to_string(max_items));
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> out;
  bool ok = true;
  for (const auto& [key, value] : n.entries) {
    auto text = ReadString(d, value, std::string(where) + "." + key.value);
    if (text) out.emplace_back(key.value, std::move(*text));
    else ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

MapReader::MapReader(Diagnostics& diagnostics, const Node& node, std::string where)
    : diagnostics_(diagnostics), node_(node), where_(std::move(where)) {
  is_map_ = node.kind == Node::Kind::kMap;
  if (!is_map_) {
    diagnostics_.Add(node, (where_.empty() ? std::string("document") : where_) +
                               ": expected a map, got " + std::string(DescribeNode(node)));
  }
}

std::string MapReader::Path(std::string_view key) const {
  return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
}

const Node* MapReader::Optional(std::string_view key) {
  known_.emplace_back(key);
  if (!is_map_) return nullptr;
  for (const auto& [k, v] : node_.entries) {
    if (k.value == key) return &v;
  }
  return nullptr;
}

const Node* MapReader::Required(std::string_view key) {
  const Node* value = Optional(key);
  if (value == nullptr && is_map_) {
    diagnostics_.Add(node_, "missing required field '" + Path(key) + "'");
  }
  return value;
}

void MapReader::Finish() {
  if (!is_map_) return;
  for (const auto& [key, value] : node_.entries) {
    if (std::find(known_.begin(), known_.end(), key.value) != known_.end()) continue;
    std::string allowed;
    std::string suggestion;
    std::size_t best = 3;
    for (const std::string& k : known_) {
      allowed += allowed.empty() ? k : ", " + k;
      const std::size_t distance = EditDistance(key.value, k);
      if (distance < best) {
        best = distance;
        suggestion = k;
      }
    }
    std::string message = "unknown field " + Quote(key.value) + " in " +
                          (where_.empty() ? std::string("the document") : where_);
    if (!suggestion.empty()) message += " (did you mean " + Quote(suggestion) + "?)";
    message += "; allowed: " + allowed;
    diagnostics_.Add(key, std::move(message));
  }
}

}  // namespace cordon::yaml
