// The Prometheus textfile (orchestrator/daemon/src/metrics_file.h): the exact text for a known
// history, the atomic write, and Prometheus's own parser (`promtool check metrics`, Debian's
// prometheus package) accepting the file.
#include "metrics_file.h"
#include "cordon/testing/temp_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace cordon::daemon {
namespace {

namespace fs = std::filesystem;

Metrics Sample() {
  Metrics m;
  m.SetJobStates({{"queued", 3}, {"running", 2}, {"succeeded", 40}, {"failed", 1}});
  m.SetQueueLengths({{1000, 2}, {1001, 1}});
  m.SetFinishedCounts({{"succeeded", 39}});
  m.JobFinished("succeeded", 42.5, 0.3, 0.05, 0);
  m.JobFinished("sandbox_violation", 3, 0.2, -1, 7);  // stage-out unknown: not observed
  m.SetAuditEntries(1234);
  m.SetLastCheckpoint(1000.0);
  return m;
}

TEST(MetricsFile, RendersEveryMetric) {
  const std::string text = Sample().Render(1090.5);
  for (const char* line :
       {"cordon_jobs{state=\"queued\"} 3\n", "cordon_jobs{state=\"running\"} 2\n",
        "cordon_jobs_finished_total{outcome=\"succeeded\"} 40\n",
        "cordon_jobs_finished_total{outcome=\"sandbox_violation\"} 1\n", "cordon_queue_length{uid=\"1000\"} 2\n",
        "cordon_job_duration_seconds_bucket{le=\"1\"} 0\n", "cordon_job_duration_seconds_bucket{le=\"5\"} 1\n",
        "cordon_job_duration_seconds_bucket{le=\"60\"} 2\n", "cordon_job_duration_seconds_bucket{le=\"+Inf\"} 2\n",
        "cordon_job_duration_seconds_sum 45.5\n", "cordon_job_duration_seconds_count 2\n",
        "cordon_stage_in_duration_seconds_bucket{le=\"0.5\"} 2\n", "cordon_stage_out_duration_seconds_count 1\n",
        "cordon_seccomp_violations_total 7\n", "cordon_audit_entries_total 1234\n",
        "cordon_audit_last_checkpoint_age_seconds 90.5\n", "cordon_degraded 0\n",
        "# TYPE cordon_job_duration_seconds histogram\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "in\n" << text;
  }
}

TEST(MetricsFile, NoCheckpointYetMeansNoAgeLine) {
  Metrics m;
  EXPECT_EQ(m.Render(5).find("checkpoint_age"), std::string::npos);
}

TEST(MetricsFile, WriteReplacesTheFileAtomicallyWithMode0644) {
  const cordon::testing::TempDir temp("metrics");
  const fs::path dir = temp.path();
  const std::string path = (dir / "cordon.prom").string();
  std::ofstream(path) << "old\n";
  const mode_t old_umask = umask(077);
  const auto st = Sample().WriteFile(path, 1090.5);
  umask(old_umask);
  ASSERT_TRUE(st.has_value()) << st.error().message;
  std::stringstream ss;
  ss << std::ifstream(path).rdbuf();
  EXPECT_EQ(ss.str(), Sample().Render(1090.5));
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1) << "a temp file was left";
  EXPECT_FALSE(Sample().WriteFile((dir / "missing" / "x.prom").string(), 0).has_value());
}

// Prometheus's parser and linter on the real file.
TEST(MetricsFile, PromtoolAcceptsTheFile) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool missing (Debian package prometheus; scripts/setup installs it)";
  }
  const cordon::testing::TempDir temp("promtool");
  const std::string path = temp.path() + "/cordon.prom";
  Metrics m = Sample();
  m.SetDegraded(true);
  ASSERT_TRUE(m.WriteFile(path, 2000).has_value());
  const std::string cmd = "promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool lint findings";
}

}  // namespace
}  // namespace cordon::daemon
