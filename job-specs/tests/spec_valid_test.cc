// Every example in job-specs/examples/ must validate, and the typed result
// must carry what the file says (and the documented defaults where it is silent).
#include <filesystem>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "cordon/specs/spec.h"

namespace cordon::specs {
namespace {

namespace fs = std::filesystem;

std::string Example(const std::string& name) { return std::string(CORDON_EXAMPLES_DIR) + "/" + name; }

TEST(Examples, EveryExampleValidates) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(CORDON_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    ParseResult r = LoadSpecFile(entry.path());
    std::string errors;
    for (const auto& d : r.diagnostics) errors += yaml::FormatDiagnostic(entry.path().string(), d) + "\n";
    EXPECT_TRUE(r.job.has_value()) << errors;
  }
  EXPECT_GE(count, 3);
}

TEST(Examples, ChurnBaselineFields) {
  ParseResult r = LoadSpecFile(Example("churn-baseline.yaml"));
  ASSERT_TRUE(r.job.has_value());
  const TrainingJob& job = *r.job;
  EXPECT_EQ(job.name, "churn-baseline");
  EXPECT_EQ(job.labels.at("team"), "risk");
  EXPECT_EQ(job.trainer.image, "/srv/trainers/churn");
  EXPECT_EQ(job.trainer.command,
            (std::vector<std::string>{"/usr/bin/python3", "/job/train.py", "--epochs", "5"}));
  EXPECT_EQ(job.trainer.env.at("SEED"), "42");
  ASSERT_EQ(job.inputs.size(), 1u);
  EXPECT_EQ(job.inputs[0].name, "customers");
  // The "sha256:" prefix that `cordon seal` prints is accepted and stripped.
  EXPECT_EQ(job.inputs[0].sha256.value(),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  EXPECT_EQ(job.inputs[0].columns, (std::vector<std::string>{"age", "tenure", "spend", "churned"}));
  EXPECT_EQ(job.output.key.adapter, "local");
  EXPECT_EQ(job.output.key.name, "models");
  EXPECT_EQ(job.resources.memory_bytes, 2ull << 30);
  EXPECT_EQ(job.resources.pids, 128u);
  EXPECT_DOUBLE_EQ(job.resources.cpus, 1.5);
  EXPECT_EQ(job.resources.timeout, std::chrono::minutes(30));
  EXPECT_EQ(job.resources.scratch_bytes, 1ull << 30);
  EXPECT_EQ(job.network, "none");
  EXPECT_EQ(job.metrics, (std::vector<std::string>{"epoch", "loss", "auc"}));
  EXPECT_EQ(job.output.max_files, 100u);
  EXPECT_EQ(job.output.max_bytes, 512ull << 20);
}

TEST(Defaults, FilledInWhenAbsent) {
  ParseResult r = LoadSpecFile(Example("minimal.yaml"));
  ASSERT_TRUE(r.job.has_value());
  const Resources& res = r.job->resources;
  EXPECT_EQ(res.memory_bytes, 1ull << 30);
  EXPECT_EQ(res.pids, 256u);
  EXPECT_DOUBLE_EQ(res.cpus, 1.0);
  EXPECT_EQ(res.timeout, std::chrono::hours(1));
  EXPECT_EQ(res.scratch_bytes, 1ull << 30);
  EXPECT_EQ(r.job->network, "none");
  EXPECT_TRUE(r.job->inputs.empty());
  EXPECT_TRUE(r.job->labels.empty());
  EXPECT_TRUE(r.job->metrics.empty());  // nothing declared: no metric passes
  EXPECT_EQ(r.job->output.max_files, Output::kDefaultMaxFiles);
  EXPECT_FALSE(r.job->output.max_bytes.has_value());  // the scratch size
  EXPECT_TRUE(r.job->output.live.empty());             // nothing sealed while the job runs
}

TEST(Accepts, LiveDirectoriesNormalisedWithATrailingSlash) {
  ParseResult r = ParseSpec(
      "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: j}\nspec:\n"
      "  trainer: {image: /srv/t, command: [/job/run]}\n"
      "  output: {path: /srv/out, key: kms://local/models, live: [checkpoints, runs/best/]}\n");
  ASSERT_TRUE(r.job.has_value()) << (r.diagnostics.empty() ? "" : r.diagnostics[0].message);
  EXPECT_EQ(r.job->output.live, (std::vector<std::string>{"checkpoints/", "runs/best/"}));
}

TEST(Json, NormalisedSpecHasDefaultsAndSchemaShape) {
  ParseResult r = LoadSpecFile(Example("minimal.yaml"));
  ASSERT_TRUE(r.job.has_value());
  const nlohmann::json j = ToJson(*r.job);
  EXPECT_EQ(j["apiVersion"], "cordon/v1");
  EXPECT_EQ(j["kind"], "TrainingJob");
  EXPECT_EQ(j["metadata"]["name"], "hello");
  EXPECT_EQ(j["spec"]["resources"]["memory"], "1Gi");
  EXPECT_EQ(j["spec"]["resources"]["memory_bytes"], 1ull << 30);
  EXPECT_EQ(j["spec"]["resources"]["timeout"], "1h");
  EXPECT_EQ(j["spec"]["resources"]["timeout_seconds"], 3600.0);
  EXPECT_EQ(j["spec"]["network"], "none");
  EXPECT_EQ(j["spec"]["output"]["key"], "kms://local/models");
}

TEST(Accepts, QuotedStringsFlowStyleAndAnchors) {
  const char* text = R"(apiVersion: "cordon/v1"
kind: 'TrainingJob'
metadata: {name: a-b-c}
spec:
  trainer: &t
    image: /srv/t
    command: ["/job/run", "--n", "5", "true", "null"]
    env: {A_1: "", _B: "x y"}
  inputs: []
  output: {path: /srv/o, key: kms://pkcs11/k.v-1_x}
  resources: {memory: 1073741824, timeout: 1h30m, cpus: 2, scratch: 16Mi, pids: 2}
)";
  ParseResult r = ParseSpec(text);
  std::string errors;
  for (const auto& d : r.diagnostics) errors += yaml::FormatDiagnostic("text", d) + "\n";
  ASSERT_TRUE(r.job.has_value()) << errors;
  EXPECT_EQ(r.job->trainer.command.back(), "null");
  EXPECT_EQ(r.job->trainer.env.at("A_1"), "");
  EXPECT_EQ(r.job->resources.memory_bytes, 1ull << 30);
  EXPECT_EQ(r.job->resources.timeout, std::chrono::minutes(90));
  EXPECT_EQ(r.job->output.key.ToString(), "kms://pkcs11/k.v-1_x");
}

TEST(Accepts, OciImagesAndGpus) {
  ParseResult r = LoadSpecFile(Example("oci-image.yaml"));
  ASSERT_TRUE(r.job.has_value());
  const Trainer& t = r.job->trainer;
  EXPECT_EQ(t.image_kind, ImageKind::kOciLayout);
  EXPECT_EQ(t.image, "/srv/cordon/images/churn");
  EXPECT_EQ(t.image_ref, "v3");
  ASSERT_TRUE(t.image_digest.has_value());
  EXPECT_TRUE(t.image_digest->starts_with("sha256:0d7e"));
  EXPECT_EQ(ImageReference(t), "oci:/srv/cordon/images/churn:v3");
  EXPECT_EQ(ToJson(*r.job)["spec"]["trainer"]["image"], "oci:/srv/cordon/images/churn:v3");
  EXPECT_EQ(r.job->resources.gpus, 0u);

  // skopeo's split: at the first ':' after the prefix; no tag = the layout's only manifest.
  const std::string base = "apiVersion: cordon/v1\nkind: TrainingJob\nmetadata: {name: g}\nspec:\n"
                           "  output: {path: /srv/o, key: kms://local/k}\n  resources: {gpus: 2}\n"
                           "  trainer:\n    command: [/usr/bin/python3]\n    image: ";
  ParseResult tagged = ParseSpec(base + "\"oci:/srv/img:repo/name:1.0@x\"\n");
  ASSERT_TRUE(tagged.job.has_value());
  EXPECT_EQ(tagged.job->trainer.image, "/srv/img");
  EXPECT_EQ(tagged.job->trainer.image_ref, "repo/name:1.0@x");
  EXPECT_EQ(tagged.job->resources.gpus, 2u);
  EXPECT_EQ(ToJson(*tagged.job)["spec"]["resources"]["gpus"], 2);
  ParseResult bare = ParseSpec(base + "oci:/srv/img\n");
  ASSERT_TRUE(bare.job.has_value());
  EXPECT_EQ(bare.job->trainer.image_kind, ImageKind::kOciLayout);
  EXPECT_EQ(bare.job->trainer.image_ref, "");
  ParseResult dir = ParseSpec(base + "/srv/img\n");
  ASSERT_TRUE(dir.job.has_value());
  EXPECT_EQ(dir.job->trainer.image_kind, ImageKind::kDirectory);
}

}  // namespace
}  // namespace cordon::specs
