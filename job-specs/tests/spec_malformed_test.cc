// The table of malformed specs: each row takes a valid base spec, makes one
// change, and names the exact line, column and message the validator must
// produce. A row passes only if that diagnostic is among those reported.
#include <gtest/gtest.h>

#include "cordon/specs/spec.h"

namespace cordon::specs {
namespace {

constexpr const char* kBase =
    "apiVersion: cordon/v1\n"                            // 1
    "kind: TrainingJob\n"                                // 2
    "metadata:\n"                                        // 3
    "  name: job-1\n"                                    // 4
    "spec:\n"                                            // 5
    "  trainer:\n"                                       // 6
    "    image: /srv/trainer\n"                          // 7
    "    command: [/job/run, --fast]\n"                  // 8
    "    env: {SEED: \"42\"}\n"                          // 9
    "  inputs:\n"                                        // 10
    "    - name: customers\n"                            // 11
    "      path: /srv/sealed/customers.sealed\n"         // 12
    "      columns: [age, spend]\n"                      // 13
    "  output:\n"                                        // 14
    "    path: /srv/out\n"                               // 15
    "    key: kms://local/models\n"                      // 16
    "  resources:\n"                                     // 17
    "    memory: 1Gi\n"                                  // 18
    "    pids: 64\n"                                     // 19
    "    cpus: 1.5\n"                                    // 20
    "    timeout: 30m\n"                                 // 21
    "    scratch: 512Mi\n"                               // 22
    "  network: none\n";                                 // 23

struct Case {
  const char* name;
  std::string from;  // replaced once in kBase; empty: `to` is appended; "*" : `to` is the whole text
  std::string to;
  int line;
  int column;
  const char* message;  // a substring of the expected diagnostic
};

std::string Apply(const Case& c) {
  std::string text = kBase;
  if (c.from == "*") return c.to;
  if (c.from.empty()) return text + c.to;
  const std::size_t at = text.find(c.from);
  if (at == std::string::npos || text.find(c.from, at + 1) != std::string::npos) {
    ADD_FAILURE() << c.name << ": '" << c.from << "' must occur exactly once in the base spec";
    return text;
  }
  return text.replace(at, c.from.size(), c.to);
}

std::string BillionLaughs() {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'i'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
    prev = c;
  }
  return bomb;
}

const std::string kHex64(64, 'a');

const Case kCases[] = {
    // Unknown keys, with a did-you-mean where one is close.
    {"unknown-top-level-key", "", "extra: 1\n", 24, 1, "unknown field 'extra' in the document; allowed: apiVersion, kind, metadata, spec"},
    {"unknown-trainer-key", "    env:", "    evn:", 9, 5, "unknown field 'evn' in spec.trainer (did you mean 'env'?)"},
    {"unknown-resources-key", "    pids: 64", "    tpus: 1", 19, 5, "unknown field 'tpus' in spec.resources"},
    // OCI images and GPUs.
    {"oci-relative-layout", "image: /srv/trainer", "image: oci:srv/trainer:v1", 7, 12, "spec.trainer.image: the OCI layout path 'srv/trainer' is relative"},
    {"oci-dotdot-layout", "image: /srv/trainer", "image: oci:/srv/../etc:v1", 7, 12, "contains a '..' component"},
    {"oci-bad-tag", "image: /srv/trainer", "image: \"oci:/srv/trainer:-x\"", 7, 12, "'-x' is not an image tag"},
    {"oci-empty-tag", "image: /srv/trainer", "image: \"oci:/srv/trainer:\"", 7, 12, "'' is not an image tag"},
    {"digest-on-directory", "    image: /srv/trainer\n", "    image: /srv/trainer\n    image_digest: sha256:" + std::string(64, 'a') + "\n", 8, 19, "spec.trainer.image_digest: only an OCI image"},
    {"digest-malformed", "    image: /srv/trainer\n", "    image: oci:/srv/trainer\n    image_digest: sha256:abc\n", 8, 19, "spec.trainer.image_digest: expected sha256:<64 lowercase hex>"},
    {"digest-uppercase", "    image: /srv/trainer\n", "    image: oci:/srv/trainer\n    image_digest: sha256:" + std::string(64, 'A') + "\n", 8, 19, "expected sha256:<64 lowercase hex>"},
    {"gpus-negative", "    pids: 64", "    pids: 64\n    gpus: -1", 20, 11, "spec.resources.gpus"},
    {"gpus-too-many", "    pids: 64", "    pids: 64\n    gpus: 65", 20, 11, "spec.resources.gpus"},
    {"unknown-input-key", "      columns:", "      colums:", 13, 7, "unknown field 'colums' in spec.inputs[0] (did you mean 'columns'?)"},
    {"unknown-metadata-key", "  name: job-1\n", "  name: job-1\n  namespace: x\n", 5, 3, "unknown field 'namespace' in metadata"},
    // Paths.
    {"relative-image", "image: /srv/trainer", "image: srv/trainer", 7, 12, "spec.trainer.image: path 'srv/trainer' is relative"},
    {"dotdot-image", "image: /srv/trainer", "image: /srv/../etc", 7, 12, "contains a '..' component"},
    {"double-slash-image", "image: /srv/trainer", "image: /srv//trainer", 7, 12, "contains '//'"},
    {"trailing-dot-image", "image: /srv/trainer", "image: /srv/trainer/.", 7, 12, "contains a '.' component"},
    {"trailing-slash-image", "image: /srv/trainer", "image: /srv/trainer/", 7, 12, "remove the trailing '/'"},
    {"root-image", "image: /srv/trainer", "image: /", 7, 12, "the host root"},
    {"proc-image", "image: /srv/trainer", "image: /proc/self/root", 7, 12, "is inside /proc"},
    {"sys-output", "path: /srv/out", "path: /sys/fs/cgroup", 15, 11, "spec.output.path: path '/sys/fs/cgroup' is inside /sys"},
    {"dev-input", "path: /srv/sealed/customers.sealed", "path: /dev/sda", 12, 13, "spec.inputs[0].path: path '/dev/sda' is inside /dev"},
    {"relative-input", "path: /srv/sealed/customers.sealed", "path: ../customers.sealed", 12, 13, "is relative"},
    // Network.
    {"network-bridge", "network: none", "network: bridge", 23, 12, "spec.network: 'bridge' is not supported: Cordon v1 jobs have no network"},
    {"network-host", "network: none", "network: host", 23, 12, "the only accepted value is 'none'"},
    {"network-not-string", "network: none", "network: [none]", 23, 12, "spec.network: expected a string, got a list"},
    // Declared metrics and the stage-out caps.
    {"metrics-not-list", "", "  metrics: loss\n", 24, 12, "spec.metrics: expected a list"},
    {"metrics-bad-name", "", "  metrics: [loss, 9lives]\n", 24, 19, "spec.metrics[1]: '9lives' is not a metric name"},
    {"metrics-dash", "", "  metrics: [val-loss]\n", 24, 13, "spec.metrics[0]: 'val-loss' is not a metric name"},
    {"metrics-too-long", "", "  metrics: [" + std::string(65, 'a') + "]\n", 24, 13, "is not a metric name"},
    {"metrics-duplicate", "", "  metrics: [loss, auc, loss]\n", 24, 24, "spec.metrics[2]: metric 'loss' is listed twice"},
    {"metrics-integer", "", "  metrics: [loss, 3]\n", 24, 19, "spec.metrics[1]: expected a string"},
    {"metrics-too-many", "", "  metrics: [" + [] {
       std::string list;
       for (int i = 0; i < 65; ++i) list += (i ? ", m" : "m") + std::to_string(i);
       return list;
     }() + "]\n", 24, 12, "spec.metrics"},
    {"output-max-files-zero", "    key: kms://local/models\n", "    key: kms://local/models\n    max_files: 0\n", 17, 16, "spec.output.max_files"},
    {"output-max-files-string", "    key: kms://local/models\n", "    key: kms://local/models\n    max_files: many\n", 17, 16, "spec.output.max_files: expected a decimal integer in 1..1000000"},
    {"output-max-bytes-bad", "    key: kms://local/models\n", "    key: kms://local/models\n    max_bytes: 10Q\n", 17, 16, "spec.output.max_bytes"},
    {"output-max-bytes-list", "    key: kms://local/models\n", "    key: kms://local/models\n    max_bytes: [1]\n", 17, 16, "spec.output.max_bytes: expected a size"},
    // Header and metadata.
    {"api-version", "apiVersion: cordon/v1", "apiVersion: cordon/v2", 1, 13, "apiVersion: 'cordon/v2' is not supported; expected 'cordon/v1'"},
    {"kind", "kind: TrainingJob", "kind: Job", 2, 7, "kind: 'Job' is not supported; expected 'TrainingJob'"},
    {"missing-api-version", "apiVersion: cordon/v1\n", "", 1, 1, "missing required field 'apiVersion'"},
    {"name-uppercase", "name: job-1", "name: Job_1", 4, 9, "metadata.name: 'Job_1' is not a valid name"},
    {"name-too-long", "name: job-1", "name: " + std::string(64, 'a'), 4, 9, "is not a valid name"},
    {"name-leading-dash", "name: job-1", "name: -job", 4, 9, "is not a valid name"},
    {"name-integer", "name: job-1", "name: 42", 4, 9, "metadata.name: expected a string, got an integer '42'"},
    {"missing-name", "  name: job-1\n", "  labels: {team: x}\n", 4, 3, "missing required field 'metadata.name'"},
    {"label-bad-value", "  name: job-1\n", "  name: job-1\n  labels: {team: 'has space'}\n", 5, 18, "metadata.labels.team: value 'has space' is not a valid label value"},
    {"label-bad-key", "  name: job-1\n", "  name: job-1\n  labels: {-team: x}\n", 5, 12, "key '-team' is not a valid label key"},
    // Structure.
    {"missing-output", "  output:\n    path: /srv/out\n    key: kms://local/models\n", "", 6, 3, "missing required field 'spec.output'"},
    {"missing-command", "    command: [/job/run, --fast]\n", "", 7, 5, "missing required field 'spec.trainer.command'"},
    {"duplicate-key", "", "  network: none\n", 24, 3, "duplicate key 'network' (first defined at line 23)"},
    {"top-level-list", "*", "- a\n- b\n", 1, 1, "document: expected a map, got a list"},
    {"resources-list", "    memory: 1Gi\n    pids: 64\n    cpus: 1.5\n    timeout: 30m\n    scratch: 512Mi\n", "    - 1Gi\n", 18, 5, "spec.resources: expected a map, got a list"},
    {"inputs-map", "  inputs:\n    - name: customers\n      path: /srv/sealed/customers.sealed\n      columns: [age, spend]\n", "  inputs: {name: customers}\n", 10, 11, "spec.inputs: expected a list, got a map"},
    // Trainer command and environment.
    {"command-empty", "command: [/job/run, --fast]", "command: []", 8, 14, "spec.trainer.command: must name the program to run"},
    {"command-relative", "command: [/job/run, --fast]", "command: [run, --fast]", 8, 15, "spec.trainer.command[0]: the program must be an absolute path"},
    {"command-integer-arg", "command: [/job/run, --fast]", "command: [/job/run, 5]", 8, 25, "spec.trainer.command[1]: expected a string, got an integer '5' (quote it"},
    {"command-bool-arg", "command: [/job/run, --fast]", "command: [/job/run, yes, true]", 8, 30, "spec.trainer.command[2]: expected a string, got a boolean 'true'"},
    {"command-relative-and-bad-arg", "command: [/job/run, --fast]", "command: [run, 5]", 8, 15, "spec.trainer.command[0]: the program must be an absolute path"},
    {"command-arg-too-long", "command: [/job/run, --fast]", "command: [/job/run, " + std::string(16 * 1024 + 1, 'x') + "]", 8, 25, "spec.trainer.command[1]: argument is longer than 16384 bytes"},
    {"command-scalar", "command: [/job/run, --fast]", "command: /job/run", 8, 14, "spec.trainer.command: expected a list, got a string"},
    {"command-nul", "command: [/job/run, --fast]", "command: [\"/job/run\\0x\"]", 8, 15, "spec.trainer.command[0]: contains a NUL character"},
    {"env-lowercase-name", "env: {SEED: \"42\"}", "env: {seed: \"42\"}", 9, 11, "spec.trainer.env: 'seed' is not a valid variable name"},
    {"env-reserved", "env: {SEED: \"42\"}", "env: {CORDON_METRICS: /tmp/x}", 9, 11, "'CORDON_METRICS' is reserved"},
    {"env-integer-value", "env: {SEED: \"42\"}", "env: {SEED: 42}", 9, 17, "spec.trainer.env.SEED: expected a string, got an integer '42'"},
    // Inputs.
    {"input-name-slash", "- name: customers", "- name: a/b", 11, 13, "spec.inputs[0].name: 'a/b' is not a valid input name"},
    {"input-name-dotdot", "- name: customers", "- name: '..'", 11, 13, "'..' is not a valid input name"},
    {"input-missing-path", "      path: /srv/sealed/customers.sealed\n", "", 11, 7, "missing required field 'spec.inputs[0].path'"},
    {"duplicate-input-name", "      columns: [age, spend]\n", "      columns: [age, spend]\n    - name: customers\n      path: /srv/sealed/b.sealed\n", 14, 7, "duplicate input name 'customers' (first used at line 11)"},
    {"sha256-short", "      columns:", "      sha256: abc123\n      columns:", 13, 15, "spec.inputs[0].sha256: expected 64 lowercase hex digits"},
    {"sha256-uppercase", "      columns:", "      sha256: " + std::string(64, 'A') + "\n      columns:", 13, 15, "expected 64 lowercase hex digits"},
    {"sha256-wrong-prefix", "      columns:", "      sha256: md5:" + kHex64 + "\n      columns:", 13, 15, "expected 64 lowercase hex digits"},
    {"columns-empty", "columns: [age, spend]", "columns: []", 13, 16, "an empty projection would give the trainer nothing"},
    {"columns-duplicate", "columns: [age, spend]", "columns: [age, age]", 13, 22, "column 'age' is listed twice"},
    {"columns-not-list", "columns: [age, spend]", "columns: age", 13, 16, "spec.inputs[0].columns: expected a list, got a string"},
    // Output key.
    {"key-no-scheme", "key: kms://local/models", "key: local/models", 16, 10, "'local/models' is not a key reference"},
    {"key-no-name", "key: kms://local/models", "key: kms://local/", 16, 10, "key name '' must match"},
    {"key-bad-adapter", "key: kms://local/models", "key: kms://Local/models", 16, 10, "adapter 'Local' must match"},
    // Live outputs (spec.output.live): relative directory prefixes under /out.
    {"live-absolute", "key: kms://local/models", "key: kms://local/models\n    live: [/etc/]", 17, 12, "spec.output.live[0]: '/etc/' is absolute"},
    {"live-dotdot", "key: kms://local/models", "key: kms://local/models\n    live: [ckpt/../../x]", 17, 12, "'ckpt/../../x' has an empty, '.' or '..' component"},
    {"live-duplicate", "key: kms://local/models", "key: kms://local/models\n    live: [ckpt, ckpt/]", 17, 18, "spec.output.live[1]: 'ckpt/' is listed twice"},
    {"live-root", "key: kms://local/models", "key: kms://local/models\n    live: [/]", 17, 12, "must name a directory under /out"},
    {"live-too-many", "key: kms://local/models", "key: kms://local/models\n    live: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]", 17, 11, "spec.output.live"},
    {"live-not-a-list", "key: kms://local/models", "key: kms://local/models\n    live: checkpoints/", 17, 11, "spec.output.live"},
    // Resources.
    {"memory-bad-suffix", "memory: 1Gi", "memory: 1GB", 18, 13, "spec.resources.memory: '1GB' has an unknown size suffix 'GB'"},
    {"memory-too-small", "memory: 1Gi", "memory: 1Mi", 18, 13, "spec.resources.memory: 1Mi is out of range: allowed 16Mi..1Ti"},
    {"memory-negative", "memory: 1Gi", "memory: -1", 18, 13, "'-1' is not a size"},
    {"memory-list", "memory: 1Gi", "memory: [1Gi]", 18, 13, "spec.resources.memory: expected a size like 512Mi or 2Gi, got a list"},
    {"pids-zero", "pids: 64", "pids: 0", 19, 11, "spec.resources.pids: 0 is out of range: allowed 2..65536"},
    {"pids-huge", "pids: 64", "pids: 99999999999999999999", 19, 11, "is out of range: allowed 2..65536"},
    {"pids-string", "pids: 64", "pids: many", 19, 11, "spec.resources.pids: expected a decimal integer in 2..65536, got a string"},
    {"pids-float", "pids: 64", "pids: 1.5", 19, 11, "expected a decimal integer in 2..65536, got a number"},
    {"cpus-zero", "cpus: 1.5", "cpus: 0", 20, 11, "spec.resources.cpus: 0 is out of range: allowed 0.01..1024"},
    {"cpus-string", "cpus: 1.5", "cpus: lots", 20, 11, "spec.resources.cpus: expected a number, got a string"},
    {"cpus-infinite", "cpus: 1.5", "cpus: .inf", 20, 11, "is not a finite decimal number"},
    {"timeout-no-unit", "timeout: 30m", "timeout: 30", 21, 14, "spec.resources.timeout: '30' is not a duration"},
    {"timeout-too-long", "timeout: 30m", "timeout: 8d", 21, 14, "spec.resources.timeout: 8d is out of range: allowed 1s..7d"},
    {"timeout-too-short", "timeout: 30m", "timeout: 10ms", 21, 14, "out of range: allowed 1s..7d"},
    {"scratch-zero", "scratch: 512Mi", "scratch: 0", 22, 14, "spec.resources.scratch: 0 is out of range: allowed 1Mi..1Ti"},
    // Hostile files.
    {"alias-bomb", "*", BillionLaughs(), 5, 8, "nodes after alias expansion (an alias bomb?)"},
    {"deep-nesting", "*", "a: " + std::string(40, '[') + std::string(40, ']') + "\n", 1, 35, "nesting is deeper than 32 levels"},
    {"over-one-mib", "*", "a: \"" + std::string(1024 * 1024, 'x') + "\"\n", 1, 1, "the limit is 1048576"},
    {"not-utf8", "name: job-1", "name: job-\xff", 4, 13, "invalid UTF-8 byte 0xff"},
    {"control-character", "name: job-1", "name: job\x1b[31m", 4, 12, "control character 0x1b is not allowed"},
    {"two-documents", "", "---\nkind: TrainingJob\n", 25, 1, "more than one YAML document"},
    {"syntax-error", "command: [/job/run, --fast]", "command: [/job/run, --fast", 9, 8, "YAML syntax error"},
    {"explicit-tag", "image: /srv/trainer", "image: !!binary /srv/trainer", 7, 12, "explicit YAML tag"},
    {"complex-key", "", "? [a]\n: b\n", 24, 3, "map keys must be plain strings, not a list"},
    {"empty-file", "*", "", 1, 1, "file is empty"},
    {"only-comment", "*", "# nothing here\n", 1, 1, "file is empty"},
    {"null-document", "*", "~\n", 1, 1, "document: expected a map, got null"},
};

// Readable test names and failure output instead of a byte dump.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MalformedSpec : public ::testing::TestWithParam<Case> {};

TEST_P(MalformedSpec, ReportsLineColumnAndMessage) {
  const Case& c = GetParam();
  const ParseResult result = ParseSpec(Apply(c));
  EXPECT_FALSE(result.job.has_value());
  std::string got;
  bool found = false;
  for (const auto& d : result.diagnostics) {
    got += "  " + yaml::FormatDiagnostic("spec.yaml", d) + "\n";
    found = found || (d.mark.line == c.line && d.mark.column == c.column &&
                      d.message.find(c.message) != std::string::npos);
  }
  EXPECT_TRUE(found) << "expected spec.yaml:" << c.line << ":" << c.column << ": error: ..."
                     << c.message << "...\ngot:\n" << got;
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedSpec, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           std::string name = param_info.param.name;
                           for (char& ch : name) if (ch == '-') ch = '_';
                           return name;
                         });

TEST(MalformedSpecTable, HasAtLeastFortyRows) { EXPECT_GE(std::size(kCases), 40u); }

TEST(MalformedSpecTable, BaseIsValid) {
  const ParseResult result = ParseSpec(kBase);
  EXPECT_TRUE(result.job.has_value());
}

TEST(MalformedSpec, ReportsEveryErrorInFileOrder) {
  const std::string text =
      "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: x, foo: 1}\nspec:\n"
      "  trainer: {image: srv/t, command: [/job/run, 5]}\n"
      "  output: {path: /srv/o, key: kms://local/m}\n"
      "  resources: {pids: 0, memory: 1GB}\n  network: bridge\n";
  const ParseResult result = ParseSpec(text);
  ASSERT_EQ(result.diagnostics.size(), 6u);
  const std::vector<std::pair<int, int>> want = {{3, 21}, {5, 20}, {5, 47}, {7, 21}, {7, 32}, {8, 12}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(result.diagnostics[i].mark.line, want[i].first) << result.diagnostics[i].message;
    EXPECT_EQ(result.diagnostics[i].mark.column, want[i].second) << result.diagnostics[i].message;
  }
}

TEST(MalformedSpec, UnreadableFileIsOneDiagnostic) {
  const ParseResult missing = LoadSpecFile("/nonexistent/spec.yaml");
  ASSERT_EQ(missing.diagnostics.size(), 1u);
  EXPECT_NE(missing.diagnostics[0].message.find("No such file"), std::string::npos);
  const ParseResult dir = LoadSpecFile("/tmp");
  ASSERT_EQ(dir.diagnostics.size(), 1u);
  EXPECT_EQ(dir.diagnostics[0].message, "is a directory");
}

}  // namespace
}  // namespace cordon::specs
