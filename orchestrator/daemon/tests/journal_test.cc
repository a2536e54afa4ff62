// journal::JobEvent off the journal (spdlog lines) and the JOURNAL_STREAM check. The journal
// side is checked under a real journald by tests/systemd (journalctl -o json, through
// journal_emit_helper).
#include "journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace cordon::daemon::journal {
namespace {

std::string DevIno(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST(Journal, StreamIsJournalOnlyForTheNamedFile) {
  char path[] = "/tmp/cordon-journal-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const int other = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_TRUE(StreamIsJournal(DevIno(fd).c_str(), fd));
  EXPECT_FALSE(StreamIsJournal(DevIno(fd).c_str(), other));
  EXPECT_FALSE(StreamIsJournal(nullptr, fd));
  EXPECT_FALSE(StreamIsJournal("", fd));
  EXPECT_FALSE(StreamIsJournal("not-a-stream", fd));
  EXPECT_FALSE(StreamIsJournal(DevIno(fd).c_str(), -1));
  close(other);
  close(fd);
  unlink(path);
}

TEST(Journal, OffTheJournalJobEventsAreSpdlogLinesWithTheFields) {
  if (StderrIsJournal()) GTEST_SKIP() << "stderr is the journal here";
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  logger->set_pattern("%l %v");
  spdlog::set_default_logger(logger);
  JobEvent("churn-000042-1a2b", "runner_crashed", "runner killed by signal 9", Level::kError);
  JobEvent(JobEventFields{"churn-000043-0000", "", "running"}, "started");
  spdlog::set_default_logger(previous);
  EXPECT_EQ(captured.str(),
            "error job churn-000042-1a2b: runner killed by signal 9 (outcome runner_crashed)\n"
            "info job churn-000043-0000: started (state running)\n");
}

}  // namespace
}  // namespace cordon::daemon::journal
