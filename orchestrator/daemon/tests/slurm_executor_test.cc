// The Slurm executor's pure parts (slurm_executor.h) and its configuration:
// what sbatch is asked (Slurm's output to /dev/null, no requeue, the job's
// resources) and the batch script, run by a real /bin/sh with hostile words in
// it; the slurm: section's errors. The executor against a real cluster is
// tests/slurm/slurm_test.sh.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cordon/config/config.h"
#include "cordon/testing/temp_dir.h"
#include "slurm_executor.h"

namespace cordon::daemon {
namespace {

namespace fs = std::filesystem;

bool Has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

orchestrator::Config SlurmConfig(const std::string& root) {
  auto parsed = orchestrator::ParseConfig("state_dir: \"" + root + "/state\"\ndaemon:\n  executor: slurm\n"
                                          "slurm:\n  partition: gpu\n  account: ml\n  sbatch_args: [\"--qos=high\"]\n"
                                          "  cordon: \"" + root + "/cordon\"\n  node_config: \"/etc/cordon/node.yaml\"\n"
                                          "  poll_interval: 500ms\n  time_grace: 2m\n");
  EXPECT_TRUE(parsed.config) << (parsed.diagnostics.empty() ? "" : parsed.diagnostics[0].message);
  return parsed.config.value_or(orchestrator::Config{});
}

SlurmJobRequest Request() {
  SlurmJobRequest r;
  r.job_id = "train-000001-ab12";
  r.submitter = 4101;
  r.spec_sha256 = "sha256:00";
  r.memory_bytes = 1ull << 30;
  r.scratch_bytes = 256ull << 20;
  r.cpus = 1.5;
  r.timeout = std::chrono::minutes(10);
  // Hostile dataset names: quotes, $(...), a newline-free ; — they must arrive as one word each.
  r.datasets = {{"customers", "it's $(touch /tmp/pwned); `id`"}};
  r.keys = {{"customers", "kms://local/datasets"}};
  return r;
}

TEST(SlurmConfig, ParsesTheSection) {
  const auto c = SlurmConfig("/srv");
  EXPECT_EQ(c.daemon.executor, orchestrator::Config::Daemon::Executor::kSlurm);
  EXPECT_EQ(c.slurm.partition, "gpu");
  EXPECT_EQ(c.slurm.sbatch_args, std::vector<std::string>{"--qos=high"});
  EXPECT_EQ(c.slurm.poll_interval_ms, 500u);
  EXPECT_EQ(c.slurm.time_grace_s, 120u);
  EXPECT_EQ(c.slurm.shared_dir, "/srv/state/slurm");  // the default
  EXPECT_EQ(c.slurm.scheduling, orchestrator::Config::Slurm::Scheduling::kCordon);
  EXPECT_EQ(orchestrator::ParseConfig("").config->daemon.executor, orchestrator::Config::Daemon::Executor::kLocal);
}

TEST(SlurmConfig, RefusesWhatCordondOwnsAndBadValues) {
  for (const char* bad : {"slurm:\n  sbatch_args: [\"--output=/tmp/x\"]\n", "slurm:\n  sbatch_args: [\"-o/tmp/x\"]\n",
                          "slurm:\n  sbatch_args: [\"--export=ALL\"]\n", "slurm:\n  sbatch_args: [\"not-an-option\"]\n",
                          "slurm:\n  sbatch_args: [\"--qos=a b\"]\n", "slurm:\n  partition: \"a b\"\n",
                          "slurm:\n  poll_interval: 1ms\n", "slurm:\n  scheduling: fifo\n", "daemon:\n  executor: k8s\n",
                          "slurm:\n  cordon: relative/cordon\n", "slurm:\n  unknown: 1\n"}) {
    const auto parsed = orchestrator::ParseConfig(bad);
    EXPECT_FALSE(parsed.config) << bad;
    EXPECT_FALSE(parsed.diagnostics.empty()) << bad;
  }
}

TEST(SlurmExecutor, SbatchKeepsSlurmsFilesEmptyAndMapsResources) {
  boost::asio::io_context io;
  const auto config = SlurmConfig("/srv");
  SlurmExecutor ex(io, config, {});
  const auto argv = ex.SbatchArgs(Request());
  EXPECT_EQ(argv.front(), "sbatch");
  for (const char* want : {"--job-name=cordon-train-000001-ab12", "--output=/dev/null", "--error=/dev/null",
                           "--no-requeue", "--export=NONE", "--cpus-per-task=2", "--time=12", "--partition=gpu",
                           "--account=ml", "--qos=high"}) {
    EXPECT_TRUE(Has(argv, want)) << want;
  }
  EXPECT_TRUE(Has(argv, "--mem=" + std::to_string(1024 + 256 + 256) + "M"));  // memory + scratch + runner
  EXPECT_EQ(argv.back(), "/srv/state/slurm/train-000001-ab12/job.sh");
}

// The script, run by /bin/sh with a stand-in `cordon` that writes its argv:
// every word arrives intact, nothing in it is executed.
TEST(SlurmExecutor, BatchScriptPassesHostileWordsIntact) {
  const cordon::testing::TempDir temp("slurm-unit");
  const fs::path root = temp.path();
  fs::create_directories(root / "state/slurm/train-000001-ab12");
  {
    std::ofstream stub(root / "cordon");
    stub << "#!/bin/sh\nfor a; do printf '%s\\n' \"$a\"; done >&2\n";
  }
  fs::permissions(root / "cordon", fs::perms::owner_all);
  boost::asio::io_context io;
  const auto config = SlurmConfig(root.string());
  SlurmExecutor ex(io, config, {});
  const std::string script = ex.BatchScript(Request());
  const fs::path file = root / "job.sh";
  {
    std::ofstream out(file);
    out << script;
  }
  const std::string cmd = "/bin/sh " + file.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream err(root / "state/slurm/train-000001-ab12/runner.err");
  std::vector<std::string> words;
  for (std::string w; std::getline(err, w);) words.push_back(w);
  EXPECT_TRUE(Has(words, "customers=it's $(touch /tmp/pwned); `id`"));
  EXPECT_TRUE(Has(words, "--as-submitter"));
  EXPECT_TRUE(Has(words, "/etc/cordon/node.yaml"));
  EXPECT_TRUE(Has(words, root.string() + "/state/slurm/train-000001-ab12/report.json"));
  EXPECT_FALSE(fs::exists("/tmp/pwned"));
}

}  // namespace
}  // namespace cordon::daemon
