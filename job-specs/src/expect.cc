#include "cordon/specs/expect.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace cordon::specs {
namespace {

using yaml::Diagnostics;
using yaml::MapReader;
using yaml::Node;

constexpr std::int64_t kMaxRows = std::int64_t{1} << 50;
constexpr double kMaxDrift = 1e6;

void ReadRows(Diagnostics& d, const Node& node, const std::string& where, Expectations& e) {
  const std::size_t before = d.list().size();
  MapReader m(d, node, where);
  const auto read = [&](const char* name, std::optional<std::uint64_t>& out) {
    if (const Node* n = m.Optional(name)) {
      if (auto v = yaml::ReadInt(d, *n, m.Path(name), 0, kMaxRows)) out = static_cast<std::uint64_t>(*v);
    }
  };
  read("min", e.min_rows);
  read("max", e.max_rows);
  m.Finish();
  if (e.min_rows && e.max_rows && *e.min_rows > *e.max_rows) {
    d.Add(node, where + ": min (" + std::to_string(*e.min_rows) + ") is greater than max (" +
                    std::to_string(*e.max_rows) + ")");
  }
  if (!e.min_rows && !e.max_rows && d.list().size() == before) d.Add(node, where + ": give min, max or both");
}

void ReadAllowed(Diagnostics& d, const Node& n, const std::string& where, ColumnExpectation& c) {
  auto values = yaml::ReadStringList(d, n, where, kMaxAllowedValues);
  if (!values) return;
  if (values->empty()) {
    d.Add(n, where + ": an empty set would reject every non-null value; list the values allowed");
    return;
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < values->size(); ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if ((*values)[i].size() > kMaxAllowedValueBytes) {
      d.Add(n.items[i], at + ": longer than " + std::to_string(kMaxAllowedValueBytes) + " bytes");
      return;
    }
    if (!seen.insert((*values)[i]).second) {
      d.Add(n.items[i], at + ": '" + (*values)[i] + "' is listed twice");
      return;
    }
  }
  c.allowed = std::move(*values);
}

ColumnExpectation ReadColumn(Diagnostics& d, const std::string& name, const Node& node, const std::string& where) {
  ColumnExpectation c;
  c.name = name;
  MapReader m(d, node, where);
  if (const Node* n = m.Optional("type")) {
    if (auto v = yaml::ReadString(d, *n, m.Path("type"))) {
      if (auto t = ParseColumnType(*v)) c.type = *t;
      else d.Add(*n, m.Path("type") + ": '" + *v + "' is not a type (integer, number, string, boolean)");
    }
  }
  if (const Node* n = m.Optional("min")) c.min = yaml::ReadNumber(d, *n, m.Path("min"));
  if (const Node* n = m.Optional("max")) c.max = yaml::ReadNumber(d, *n, m.Path("max"));
  if (c.min && c.max && *c.min > *c.max) d.Add(node, where + ": min is greater than max");
  if (const Node* n = m.Optional("max_null_fraction")) {
    if (auto v = yaml::ReadNumber(d, *n, m.Path("max_null_fraction"))) {
      if (*v >= 0 && *v <= 1) c.max_null_fraction = *v;
      else d.Add(*n, m.Path("max_null_fraction") + ": " + n->value + " is out of range: allowed 0..1");
    }
  }
  if (const Node* n = m.Optional("allowed")) ReadAllowed(d, *n, m.Path("allowed"), c);
  if (const Node* n = m.Optional("unique")) c.unique = yaml::ReadBool(d, *n, m.Path("unique")).value_or(false);
  if ((c.min || c.max) && c.type && (*c.type == ColumnType::kString || *c.type == ColumnType::kBoolean)) {
    d.Add(node, where + ": min/max need a numeric column (type integer or number)");
  }
  m.Finish();
  return c;
}

void ReadColumns(Diagnostics& d, const Node& node, const std::string& where, Expectations& e) {
  if (node.kind != Node::Kind::kMap) {
    d.Add(node, where + ": expected a map of column name to checks, got " + std::string(yaml::DescribeNode(node)));
    return;
  }
  if (node.entries.size() > kMaxExpectColumns) {
    d.Add(node, where + ": " + std::to_string(node.entries.size()) + " columns; the limit is " +
                    std::to_string(kMaxExpectColumns));
    return;
  }
  for (const auto& entry : node.entries) {
    const std::string& name = entry.key.value;
    if (name.empty() || name.size() > kMaxExpectColumnBytes || name.find_first_of("\r\n") != std::string::npos) {
      d.Add(entry.key, where + ": a column name must be 1.." + std::to_string(kMaxExpectColumnBytes) +
                           " bytes on one line");
      continue;
    }
    e.columns.push_back(ReadColumn(d, name, entry.value, where + "." + name));
  }
}

}  // namespace

const char* ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kString: return "string";
    case ColumnType::kInteger: return "integer";
    case ColumnType::kNumber: return "number";
    case ColumnType::kBoolean: return "boolean";
  }
  return "string";
}

std::optional<ColumnType> ParseColumnType(std::string_view name) {
  for (ColumnType t : {ColumnType::kString, ColumnType::kInteger, ColumnType::kNumber, ColumnType::kBoolean}) {
    if (name == ColumnTypeName(t)) return t;
  }
  return std::nullopt;
}

std::size_t Expectations::CheckCount() const {
  const auto one = [](bool set) -> std::size_t { return set ? 1u : 0u; };
  std::size_t n = one(min_rows || max_rows) + one(max_drift.has_value());
  for (const ColumnExpectation& c : columns) {
    n += 1;  // the column is present
    n += one(c.type.has_value()) + one(c.min.has_value()) + one(c.max.has_value()) +
         one(c.max_null_fraction.has_value()) + one(c.allowed.has_value()) + one(c.unique);
  }
  return n;
}

void ReadExpectations(Diagnostics& d, const Node& node, const std::string& where, std::optional<Expectations>& out) {
  Expectations e;
  const std::size_t before = d.list().size();
  MapReader m(d, node, where);
  if (const Node* n = m.Optional("rows")) ReadRows(d, *n, m.Path("rows"), e);
  if (const Node* n = m.Optional("columns")) ReadColumns(d, *n, m.Path("columns"), e);
  if (const Node* n = m.Optional("max_drift")) {
    if (auto v = yaml::ReadNumber(d, *n, m.Path("max_drift"))) {
      if (*v >= 0 && *v <= kMaxDrift) e.max_drift = *v;
      else d.Add(*n, m.Path("max_drift") + ": " + n->value + " is out of range: allowed 0..1000000");
    }
  }
  m.Finish();
  if (d.list().size() == before && e.CheckCount() == 0) {
    d.Add(node, where + ": no checks: give rows, columns or max_drift (or omit expect)");
  }
  if (d.list().size() == before) out = std::move(e);
}

nlohmann::json ToJson(const Expectations& e) {
  using nlohmann::json;
  json columns = json::object();
  for (const ColumnExpectation& c : e.columns) {
    json j = json::object();
    if (c.type) j["type"] = ColumnTypeName(*c.type);
    if (c.min) j["min"] = *c.min;
    if (c.max) j["max"] = *c.max;
    if (c.max_null_fraction) j["max_null_fraction"] = *c.max_null_fraction;
    if (c.allowed) j["allowed"] = *c.allowed;
    if (c.unique) j["unique"] = true;
    columns[c.name] = std::move(j);
  }
  json out = {{"columns", std::move(columns)}};
  if (e.min_rows || e.max_rows) {
    out["rows"] = json::object();
    if (e.min_rows) out["rows"]["min"] = *e.min_rows;
    if (e.max_rows) out["rows"]["max"] = *e.max_rows;
  }
  if (e.max_drift) out["max_drift"] = *e.max_drift;
  return out;
}

}  // namespace cordon::specs
