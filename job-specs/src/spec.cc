#include "cordon/specs/spec.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "cordon/file_io.h"
#include "cordon/paths.h"
#include "cordon/units.h"

namespace cordon::specs {
namespace {

using yaml::Diagnostics;
using yaml::MapReader;
using yaml::Node;

// Limits on untrusted spec content (each has a test in spec_malformed_test.cc).
constexpr std::size_t kMaxSpecBytes = 1024 * 1024;
constexpr std::size_t kMaxLabels = 64;
constexpr std::size_t kMaxArgs = 1024;
constexpr std::size_t kMaxArgBytes = 16 * 1024;
constexpr std::size_t kMaxEnv = 256;
constexpr std::size_t kMaxInputs = 256;
constexpr std::size_t kMaxColumns = 4096;
constexpr std::uint64_t kMinMemory = 16ull << 20;  // 16Mi
constexpr std::uint64_t kMaxMemory = 1ull << 40;   // 1Ti
constexpr std::uint64_t kMinScratch = 1ull << 20;  // 1Mi
constexpr std::uint64_t kMaxScratch = 1ull << 40;  // 1Ti
constexpr std::int64_t kMinPids = 2;                // the trainer and one child
constexpr std::int64_t kMaxPids = 65536;
constexpr std::int64_t kMaxGpus = 64;
constexpr std::size_t kMaxImageRef = 128;
constexpr double kMinCpus = 0.01;
constexpr double kMaxCpus = 1024;
constexpr auto kMinTimeout = std::chrono::seconds(1);
constexpr auto kMaxTimeout = std::chrono::hours(24 * 7);

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsLower(c) || IsUpper(c) || IsDigit(c); }

// ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$  (a DNS-1123 label)
bool IsDnsLabel(std::string_view s) {
  const auto ok = [](char c) { return IsLower(c) || IsDigit(c); };
  return !s.empty() && s.size() <= 63 && ok(s.front()) && ok(s.back()) &&
         std::all_of(s.begin(), s.end(), [&](char c) { return ok(c) || c == '-'; });
}

// Kubernetes label name segment: ^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$
bool IsLabelSegment(std::string_view s) {
  return !s.empty() && s.size() <= 63 && IsAlnum(s.front()) && IsAlnum(s.back()) &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

// DNS-1123 subdomain for a label key prefix.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  while (!s.empty()) {
    const std::size_t dot = s.find('.');
    if (!IsDnsLabel(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return true;
}

bool IsLabelKey(std::string_view key) {
  const std::size_t slash = key.find('/');
  if (slash == std::string_view::npos) return IsLabelSegment(key);
  return IsDnsSubdomain(key.substr(0, slash)) && IsLabelSegment(key.substr(slash + 1));
}

// ^[A-Z_][A-Z0-9_]*$
bool IsEnvName(std::string_view s) {
  return !s.empty() && s.size() <= 128 && (IsUpper(s.front()) || s.front() == '_') &&
         std::all_of(s.begin(), s.end(), [](char c) { return IsUpper(c) || IsDigit(c) || c == '_'; });
}

// ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$  — one safe path component under /data
bool IsInputName(std::string_view s) {
  return !s.empty() && s.size() <= 128 && IsAlnum(s.front()) &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; });
}

}  // namespace

std::string ImageReference(const Trainer& trainer) {
  if (trainer.image_kind == ImageKind::kDirectory) return trainer.image;
  return "oci:" + trainer.image + (trainer.image_ref.empty() ? "" : ":" + trainer.image_ref);
}

bool IsMetricName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && (IsUpper(s.front()) || IsLower(s.front()) || s.front() == '_') &&
         std::all_of(s.begin(), s.end(), [](char c) { return IsAlnum(c) || c == '_'; });
}

namespace {

bool IsHex64(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); });
}

// The key node and the value node of `key` in a map known to contain it.
const Node& KeyNode(const Node& map, std::string_view key) {
  for (const auto& entry : map.entries) {
    if (entry.key.value == key) return entry.key;
  }
  return map;
}
const Node& ValueNode(const Node& map, std::string_view key) {
  for (const auto& entry : map.entries) {
    if (entry.key.value == key) return entry.value;
  }
  return map;
}

// A string or integer scalar: sizes and durations are written either way.
bool IsScalarValue(const Node& n) {
  const yaml::ScalarType type = yaml::Resolve(n);
  return n.kind == Node::Kind::kScalar &&
         (type == yaml::ScalarType::kString || type == yaml::ScalarType::kInt);
}

class SpecReader final {
 public:
  explicit SpecReader(Diagnostics& d) : d_(d) {}

  TrainingJob Read(const Node& root) {
    TrainingJob job;
    MapReader top(d_, root, "");
    ReadHeader(top);
    if (const Node* metadata = top.Required("metadata")) ReadMetadata(*metadata, job);
    if (const Node* spec = top.Required("spec")) ReadSpec(*spec, job);
    top.Finish();
    return job;
  }

 private:
  void ReadHeader(MapReader& top) {
    if (const Node* n = top.Required("apiVersion")) {
      if (auto v = yaml::ReadString(d_, *n, "apiVersion"); v && *v != kApiVersion) {
        d_.Add(*n, "apiVersion: '" + *v + "' is not supported; expected '" +
                       std::string(kApiVersion) + "'");
      }
    }
    if (const Node* n = top.Required("kind")) {
      if (auto v = yaml::ReadString(d_, *n, "kind"); v && *v != kKind) {
        d_.Add(*n, "kind: '" + *v + "' is not supported; expected '" + std::string(kKind) + "'");
      }
    }
  }

  void ReadMetadata(const Node& node, TrainingJob& job) {
    MapReader m(d_, node, "metadata");
    if (const Node* n = m.Required("name")) {
      if (auto v = yaml::ReadString(d_, *n, "metadata.name")) {
        if (IsDnsLabel(*v)) job.name = *v;
        else d_.Add(*n, "metadata.name: '" + *v + "' is not a valid name: use 1-63 lowercase "
                        "letters, digits and '-', starting and ending with a letter or digit");
      }
    }
    if (const Node* n = m.Optional("labels")) ReadLabels(*n, job);
    m.Finish();
  }

  void ReadLabels(const Node& node, TrainingJob& job) {
    auto labels = yaml::ReadStringMap(d_, node, "metadata.labels", kMaxLabels);
    if (!labels) return;
    for (const auto& [key, value] : *labels) {
      if (!IsLabelKey(key)) {
        d_.Add(KeyNode(node, key), "metadata.labels: key '" + key + "' is not a valid label key "
                   "([prefix/]name, name: 1-63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)");
      } else if (!value.empty() && !IsLabelSegment(value)) {
        d_.Add(ValueNode(node, key), "metadata.labels." + key + ": value '" + value + "' is not a valid label value "
                   "(0-63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)");
      } else {
        job.labels[key] = value;
      }
    }
  }

  void ReadSpec(const Node& node, TrainingJob& job) {
    MapReader s(d_, node, "spec");
    if (const Node* n = s.Required("trainer")) ReadTrainer(*n, job.trainer);
    if (const Node* n = s.Optional("inputs")) ReadInputs(*n, job.inputs);
    if (const Node* n = s.Required("output")) ReadOutput(*n, job.output);
    if (const Node* n = s.Optional("resources")) ReadResources(*n, job.resources);
    if (const Node* n = s.Optional("network")) ReadNetwork(*n, job);
    if (const Node* n = s.Optional("metrics")) ReadMetrics(*n, job);
    s.Finish();
  }

  void ReadMetrics(const Node& n, TrainingJob& job) {
    auto names = yaml::ReadStringList(d_, n, "spec.metrics", kMaxMetrics);
    if (!names) return;
    std::set<std::string> seen;
    bool ok = true;
    for (std::size_t i = 0; i < names->size(); ++i) {
      const std::string& name = (*names)[i];
      const std::string at = "spec.metrics[" + std::to_string(i) + "]";
      if (!IsMetricName(name)) {
        d_.Add(n.items[i], at + ": '" + name + "' is not a metric name (^[A-Za-z_][A-Za-z0-9_]{0,63}$)");
        ok = false;
      } else if (!seen.insert(name).second) {
        d_.Add(n.items[i], at + ": metric '" + name + "' is listed twice");
        ok = false;
      }
    }
    if (ok) job.metrics = std::move(*names);
  }

  std::optional<std::string> ReadPath(const Node& n, const std::string& where) {
    auto v = yaml::ReadString(d_, n, where);
    if (!v) return std::nullopt;
    if (auto ok = CheckHostPath(*v); !ok) {
      d_.Add(n, where + ": " + ok.error().message);
      return std::nullopt;
    }
    return v;
  }

  void ReadTrainer(const Node& node, Trainer& trainer) {
    MapReader t(d_, node, "spec.trainer");
    if (const Node* n = t.Required("image")) ReadImage(*n, trainer);
    if (const Node* n = t.Optional("image_digest")) {
      ReadImageDigest(*n, trainer);
      if (trainer.image_digest && trainer.image_kind != ImageKind::kOciLayout && !trainer.image.empty()) {
        d_.Add(*n, "spec.trainer.image_digest: only an OCI image (image: oci:PATH[:TAG]) has a manifest digest to pin");
      }
    }
    if (const Node* n = t.Required("command")) ReadCommand(*n, trainer);
    if (const Node* n = t.Optional("env")) ReadEnv(*n, trainer);
    t.Finish();
  }

  // "oci:PATH[:TAG]" as skopeo's oci transport splits it (at the first ':' after the prefix);
  // anything else is a directory image.
  void ReadImage(const Node& n, Trainer& trainer) {
    auto v = yaml::ReadString(d_, n, "spec.trainer.image");
    if (!v) return;
    if (!v->starts_with("oci:")) {
      if (auto p = ReadPath(n, "spec.trainer.image")) trainer.image = *p;
      return;
    }
    const std::string rest = v->substr(4);
    const auto colon = rest.find(':');
    const std::string path = rest.substr(0, colon);
    const std::string ref = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (auto ok = CheckHostPath(path); !ok) {
      d_.Add(n, "spec.trainer.image: the OCI layout " + ok.error().message);
      return;
    }
    if (colon != std::string::npos && !IsImageRef(ref)) {
      d_.Add(n, "spec.trainer.image: '" + ref + "' is not an image tag (letters, digits and . _ - : @ + /, "
                "starting with a letter or digit, at most " + std::to_string(kMaxImageRef) + ")");
      return;
    }
    trainer.image_kind = ImageKind::kOciLayout;
    trainer.image = path;
    trainer.image_ref = ref;
  }

  static bool IsImageRef(std::string_view ref) {
    if (ref.empty() || ref.size() > kMaxImageRef || !std::isalnum(static_cast<unsigned char>(ref[0]))) return false;
    return std::all_of(ref.begin(), ref.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._-:@+/").find(c) != std::string_view::npos;
    });
  }

  void ReadImageDigest(const Node& n, Trainer& trainer) {
    auto v = yaml::ReadString(d_, n, "spec.trainer.image_digest");
    if (!v) return;
    const bool hex = v->size() == 71 && v->starts_with("sha256:") &&
                     std::all_of(v->begin() + 7, v->end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f'); });
    if (!hex) {
      d_.Add(n, "spec.trainer.image_digest: expected sha256:<64 lowercase hex> (the manifest digest), got '" + *v + "'");
      return;
    }
    trainer.image_digest = *v;
  }

  void ReadCommand(const Node& n, Trainer& trainer) {
    auto argv = yaml::ReadStringList(d_, n, "spec.trainer.command", kMaxArgs);
    bool ok = argv.has_value();
    if (n.kind == Node::Kind::kSequence && n.items.empty()) {
      d_.Add(n, "spec.trainer.command: must name the program to run, e.g. [/usr/bin/python3, /job/train.py]");
      return;
    }
    // The program is checked even when a later argument is malformed: report every error.
    if (n.kind == Node::Kind::kSequence && yaml::Resolve(n.items[0]) == yaml::ScalarType::kString) {
      if (auto checked = CheckNormalizedAbsolutePath(n.items[0].value); !checked) {
        d_.Add(n.items[0], "spec.trainer.command[0]: the program must be an absolute path inside the "
                           "sandbox (e.g. /usr/bin/python3 or /job/train): " + checked.error().message);
        ok = false;
      }
    }
    if (!argv) return;
    for (std::size_t i = 0; i < argv->size(); ++i) {
      if ((*argv)[i].size() > kMaxArgBytes) {
        d_.Add(n.items[i], "spec.trainer.command[" + std::to_string(i) + "]: argument is longer than " +
                               std::to_string(kMaxArgBytes) + " bytes");
        ok = false;
      }
    }
    if (ok) trainer.command = std::move(*argv);
  }

  void ReadEnv(const Node& node, Trainer& trainer) {
    auto env = yaml::ReadStringMap(d_, node, "spec.trainer.env", kMaxEnv);
    if (!env) return;
    for (const auto& [name, value] : *env) {
      const Node& at = KeyNode(node, name);
      if (!IsEnvName(name)) {
        d_.Add(at, "spec.trainer.env: '" + name + "' is not a valid variable name (^[A-Z_][A-Z0-9_]*$)");
      } else if (name.starts_with("CORDON_")) {
        d_.Add(at, "spec.trainer.env: '" + name + "' is reserved: CORDON_* variables are set by Cordon");
      } else {
        trainer.env[name] = value;
      }
    }
  }

  void ReadInputs(const Node& node, std::vector<Input>& inputs) {
    if (node.kind != Node::Kind::kSequence) {
      d_.Add(node, "spec.inputs: expected a list, got " + std::string(yaml::DescribeNode(node)));
      return;
    }
    if (node.items.size() > kMaxInputs) {
      d_.Add(node, "spec.inputs: " + std::to_string(node.items.size()) + " inputs; the limit is " +
                       std::to_string(kMaxInputs));
      return;
    }
    std::map<std::string, int> first_line;
    for (std::size_t i = 0; i < node.items.size(); ++i) {
      Input input = ReadInput(node.items[i], "spec.inputs[" + std::to_string(i) + "]");
      if (input.name.empty()) continue;
      const auto [it, fresh] = first_line.emplace(input.name, node.items[i].mark.line);
      if (!fresh) {
        d_.Add(node.items[i], "spec.inputs[" + std::to_string(i) + "].name: duplicate input name '" +
                                  input.name + "' (first used at line " + std::to_string(it->second) +
                                  "); each input needs its own name under /data");
        continue;
      }
      inputs.push_back(std::move(input));
    }
  }

  Input ReadInput(const Node& node, const std::string& where) {
    Input input;
    MapReader m(d_, node, where);
    if (const Node* n = m.Required("name")) {
      if (auto v = yaml::ReadString(d_, *n, where + ".name")) {
        if (IsInputName(*v)) input.name = *v;
        else d_.Add(*n, where + ".name: '" + *v + "' is not a valid input name: 1-128 of A-Z a-z "
                        "0-9 . _ -, starting with a letter or digit (it becomes /data/<name>)");
      }
    }
    if (const Node* n = m.Required("path")) {
      if (auto v = ReadPath(*n, where + ".path")) input.path = *v;
    }
    if (const Node* n = m.Optional("sha256")) {
      if (auto v = yaml::ReadString(d_, *n, where + ".sha256")) {
        std::string hex = v->starts_with("sha256:") ? v->substr(7) : *v;
        if (IsHex64(hex)) input.sha256 = std::move(hex);
        else d_.Add(*n, where + ".sha256: expected 64 lowercase hex digits (optionally prefixed "
                        "'sha256:', as `cordon seal` prints), got '" + *v + "'");
      }
    }
    if (const Node* n = m.Optional("columns")) ReadColumns(*n, where + ".columns", input);
    if (const Node* n = m.Optional("expect")) ReadExpectations(d_, *n, where + ".expect", input.expect);
    m.Finish();
    return input;
  }

  void ReadColumns(const Node& n, const std::string& where, Input& input) {
    auto columns = yaml::ReadStringList(d_, n, where, kMaxColumns);
    if (!columns) return;
    if (columns->empty()) {
      d_.Add(n, where + ": an empty projection would give the trainer nothing; list the columns "
                        "it needs, or omit 'columns' to pass every column");
      return;
    }
    std::set<std::string> seen;
    bool ok = true;
    for (std::size_t i = 0; i < columns->size(); ++i) {
      const std::string& column = (*columns)[i];
      const std::string at = where + "[" + std::to_string(i) + "]";
      if (column.empty() || column.find_first_of("\r\n") != std::string::npos) {
        d_.Add(n.items[i], at + ": a column name must be non-empty and on one line");
        ok = false;
      } else if (!seen.insert(column).second) {
        d_.Add(n.items[i], at + ": column '" + column + "' is listed twice");
        ok = false;
      }
    }
    if (ok) input.columns = std::move(*columns);
  }

  void ReadOutput(const Node& node, Output& output) {
    MapReader m(d_, node, "spec.output");
    if (const Node* n = m.Required("path")) {
      if (auto v = ReadPath(*n, "spec.output.path")) output.path = *v;
    }
    if (const Node* n = m.Required("key")) {
      if (auto v = yaml::ReadString(d_, *n, "spec.output.key")) {
        if (auto ref = ParseKeyRef(*v)) output.key = *ref;
        else d_.Add(*n, "spec.output.key: " + ref.error().message);
      }
    }
    if (const Node* n = m.Optional("max_files")) {
      if (auto v = yaml::ReadInt(d_, *n, "spec.output.max_files", 1, static_cast<std::int64_t>(Output::kMaxMaxFiles))) {
        output.max_files = static_cast<std::uint64_t>(*v);
      }
    }
    if (const Node* n = m.Optional("max_bytes")) {
      std::uint64_t bytes = 0;
      if (ReadSize(*n, "spec.output.max_bytes", 1, kMaxScratch, bytes)) output.max_bytes = bytes;
    }
    if (const Node* n = m.Optional("live")) ReadLive(*n, output);
    m.Finish();
  }

  // spec.output.live: relative directory prefixes under /out, normalised to end in '/'.
  void ReadLive(const Node& n, Output& output) {
    const std::string where = "spec.output.live";
    auto dirs = yaml::ReadStringList(d_, n, where, Output::kMaxLiveDirs);
    if (!dirs) return;
    std::set<std::string> seen;
    bool ok = true;
    for (std::size_t i = 0; i < dirs->size(); ++i) {
      std::string dir = (*dirs)[i];
      const std::string at = where + "[" + std::to_string(i) + "]";
      if (auto bad = LiveDirProblem(dir)) {
        d_.Add(n.items[i], at + ": " + *bad);
        ok = false;
        continue;
      }
      if (dir.back() != '/') dir += '/';
      if (!seen.insert(dir).second) {
        d_.Add(n.items[i], at + ": '" + dir + "' is listed twice");
        ok = false;
      }
      (*dirs)[i] = dir;
    }
    if (ok) output.live = std::move(*dirs);
  }

  static std::optional<std::string> LiveDirProblem(const std::string& dir) {
    if (dir.empty() || dir == "/") return "a live directory must name a directory under /out, e.g. checkpoints/";
    if (dir.front() == '/') return "'" + dir + "' is absolute: give a path relative to /out, e.g. checkpoints/";
    if (dir.size() > 255) return "a live directory is at most 255 bytes";
    for (const char c : dir) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "a live directory holds no control characters";
    }
    std::size_t depth = 0;
    for (std::size_t at = 0; at < dir.size();) {
      const std::size_t slash = dir.find('/', at);
      const std::string part = dir.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
      if (part.empty() || part == "." || part == "..") {
        return "'" + dir + "' has an empty, '.' or '..' component";
      }
      if (++depth > 15) return "'" + dir + "' is nested deeper than 15 directories";
      if (slash == std::string::npos) break;
      at = slash + 1;
    }
    return std::nullopt;
  }

  void ReadResources(const Node& node, Resources& r) {
    MapReader m(d_, node, "spec.resources");
    if (const Node* n = m.Optional("memory")) {
      ReadSize(*n, "spec.resources.memory", kMinMemory, kMaxMemory, r.memory_bytes);
    }
    if (const Node* n = m.Optional("pids")) {
      if (auto v = yaml::ReadInt(d_, *n, "spec.resources.pids", kMinPids, kMaxPids)) {
        r.pids = static_cast<std::uint32_t>(*v);
      }
    }
    if (const Node* n = m.Optional("cpus")) {
      if (auto v = yaml::ReadNumber(d_, *n, "spec.resources.cpus")) {
        if (*v >= kMinCpus && *v <= kMaxCpus) r.cpus = *v;
        else d_.Add(*n, "spec.resources.cpus: " + n->value + " is out of range: allowed 0.01..1024");
      }
    }
    if (const Node* n = m.Optional("timeout")) ReadTimeout(*n, r);
    if (const Node* n = m.Optional("scratch")) {
      ReadSize(*n, "spec.resources.scratch", kMinScratch, kMaxScratch, r.scratch_bytes);
    }
    if (const Node* n = m.Optional("gpus")) {
      if (auto v = yaml::ReadInt(d_, *n, "spec.resources.gpus", 0, kMaxGpus)) r.gpus = static_cast<std::uint32_t>(*v);
    }
    m.Finish();
  }

  bool ReadSize(const Node& n, const std::string& where, std::uint64_t min, std::uint64_t max,
                std::uint64_t& out) {
    if (!IsScalarValue(n)) {
      d_.Add(n, where + ": expected a size like 512Mi or 2Gi, got " +
                    std::string(yaml::DescribeNode(n)));
      return false;
    }
    auto size = ParseSize(n.value);
    if (!size) {
      d_.Add(n, where + ": " + size.error().message);
    } else if (*size < min || *size > max) {
      d_.Add(n, where + ": " + n.value + " is out of range: allowed " + FormatSize(min) + ".." +
                    FormatSize(max));
    } else {
      out = *size;
      return true;
    }
    return false;
  }

  void ReadTimeout(const Node& n, Resources& r) {
    if (!IsScalarValue(n)) {
      d_.Add(n, "spec.resources.timeout: expected a duration like 90s, 30m or 2h, got " +
                    std::string(yaml::DescribeNode(n)));
      return;
    }
    auto duration = ParseDuration(n.value);
    if (!duration) {
      d_.Add(n, "spec.resources.timeout: " + duration.error().message);
    } else if (*duration < kMinTimeout || *duration > kMaxTimeout) {
      d_.Add(n, "spec.resources.timeout: " + n.value + " is out of range: allowed 1s..7d");
    } else {
      r.timeout = *duration;
    }
  }

  void ReadNetwork(const Node& n, TrainingJob& job) {
    auto v = yaml::ReadString(d_, n, "spec.network");
    if (!v) return;
    if (*v != "none") {
      d_.Add(n, "spec.network: '" + *v + "' is not supported: Cordon v1 jobs have no network "
                "(loopback only); the only accepted value is 'none'");
      return;
    }
    job.network = *v;
  }

  Diagnostics& d_;
};

}  // namespace

ParseResult ParseSpec(std::string_view text) {
  ParseResult result;
  result.job = yaml::LoadAndRead(text, {.max_bytes = kMaxSpecBytes}, result.diagnostics,
                                 [](Diagnostics& d, const Node& root) { return SpecReader(d).Read(root); });
  std::stable_sort(result.diagnostics.begin(), result.diagnostics.end(),
                   [](const yaml::Diagnostic& a, const yaml::Diagnostic& b) {
                     return std::tie(a.mark.line, a.mark.column) < std::tie(b.mark.line, b.mark.column);
                   });
  return result;
}

ParseResult LoadSpecFile(const std::string& path) {
  auto text = ReadFileLimited(path, kMaxSpecBytes);
  if (!text) {
    ParseResult result;
    std::string message = text.error().message;
    if (message.starts_with(path + ": ")) message.erase(0, path.size() + 2);
    result.diagnostics.push_back({{1, 1}, message});
    return result;
  }
  return ParseSpec(*text);
}

nlohmann::json ToJson(const TrainingJob& job) {
  using nlohmann::json;
  json inputs = json::array();
  for (const Input& input : job.inputs) {
    json i = {{"name", input.name}, {"path", input.path}};
    i["sha256"] = input.sha256 ? json(*input.sha256) : json(nullptr);
    i["columns"] = input.columns;
    if (input.expect) i["expect"] = ToJson(*input.expect);
    inputs.push_back(std::move(i));
  }
  const Resources& r = job.resources;
  return json{
      {"apiVersion", kApiVersion},
      {"kind", kKind},
      {"metadata", {{"name", job.name}, {"labels", job.labels}}},
      {"spec",
       {{"trainer",
         {{"image", ImageReference(job.trainer)},
          {"image_digest", job.trainer.image_digest ? json(*job.trainer.image_digest) : json(nullptr)},
          {"command", job.trainer.command}, {"env", job.trainer.env}}},
        {"inputs", std::move(inputs)},
        {"output", {{"path", job.output.path}, {"key", job.output.key.ToString()}, {"max_files", job.output.max_files},
                    {"max_bytes", job.output.max_bytes ? json(*job.output.max_bytes) : json(nullptr)},
                    {"live", job.output.live}}},
        {"resources",
         {{"memory", FormatSize(r.memory_bytes)},
          {"memory_bytes", r.memory_bytes},
          {"pids", r.pids},
          {"cpus", r.cpus},
          {"timeout", FormatDuration(r.timeout)},
          {"timeout_seconds", static_cast<double>(r.timeout.count()) / 1000.0},
          {"scratch", FormatSize(r.scratch_bytes)},
          {"scratch_bytes", r.scratch_bytes},
          {"gpus", r.gpus}}},
        {"network", job.network},
        {"metrics", job.metrics}}}};
}

}  // namespace cordon::specs
