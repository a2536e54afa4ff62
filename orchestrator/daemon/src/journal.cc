#include "journal.h"

#include <sys/stat.h>
#include <syslog.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#define SD_JOURNAL_SUPPRESS_LOCATION 1  // no CODE_FILE=/CODE_LINE= of this file on every entry
#include <spdlog/spdlog.h>
#include <systemd/sd-journal.h>

namespace cordon::daemon::journal {
namespace {

int Priority(Level level) {
  switch (level) {
    case Level::kInfo: return LOG_INFO;
    case Level::kWarning: return LOG_WARNING;
    case Level::kError: return LOG_ERR;
  }
  return LOG_INFO;
}

std::string Field(const char* name, std::string_view value) { return std::string(name) + std::string(value); }

bool SendToJournal(const JobEventFields& f, std::string_view message, Level level) {
  // sd_journal_send takes printf formats; pass every value through "%s" (no format injection).
  const std::string msg(message), job(f.job_id), outcome(f.outcome), state(f.state);
  int rc;
  if (!outcome.empty() && !state.empty()) {
    rc = sd_journal_send("MESSAGE=%s", msg.c_str(), "PRIORITY=%i", Priority(level), "SYSLOG_IDENTIFIER=cordond",
                         "CORDON_JOB_ID=%s", job.c_str(), "CORDON_OUTCOME=%s", outcome.c_str(), "CORDON_STATE=%s",
                         state.c_str(), nullptr);
  } else if (!outcome.empty()) {
    rc = sd_journal_send("MESSAGE=%s", msg.c_str(), "PRIORITY=%i", Priority(level), "SYSLOG_IDENTIFIER=cordond",
                         "CORDON_JOB_ID=%s", job.c_str(), "CORDON_OUTCOME=%s", outcome.c_str(), nullptr);
  } else if (!state.empty()) {
    rc = sd_journal_send("MESSAGE=%s", msg.c_str(), "PRIORITY=%i", Priority(level), "SYSLOG_IDENTIFIER=cordond",
                         "CORDON_JOB_ID=%s", job.c_str(), "CORDON_STATE=%s", state.c_str(), nullptr);
  } else {
    rc = sd_journal_send("MESSAGE=%s", msg.c_str(), "PRIORITY=%i", Priority(level), "SYSLOG_IDENTIFIER=cordond",
                         "CORDON_JOB_ID=%s", job.c_str(), nullptr);
  }
  return rc >= 0;
}

void SendToSpdlog(const JobEventFields& f, std::string_view message, Level level) {
  std::string line = Field("job ", f.job_id) + ": " + std::string(message);
  if (!f.state.empty()) line += Field(" (state ", f.state) + ")";
  if (!f.outcome.empty()) line += Field(" (outcome ", f.outcome) + ")";
  switch (level) {
    case Level::kInfo: spdlog::info("{}", line); break;
    case Level::kWarning: spdlog::warn("{}", line); break;
    case Level::kError: spdlog::error("{}", line); break;
  }
}

}  // namespace

bool StreamIsJournal(const char* journal_stream, int fd) {
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  std::uintmax_t dev = 0, ino = 0;
  if (std::sscanf(journal_stream, "%ju:%ju", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<std::uintmax_t>(st.st_dev) == dev && static_cast<std::uintmax_t>(st.st_ino) == ino;
}

bool StderrIsJournal() {
  static const bool is_journal = StreamIsJournal(std::getenv("JOURNAL_STREAM"), 2);
  return is_journal;
}

void JobEvent(const JobEventFields& fields, std::string_view message, Level level) {
  if (StderrIsJournal() && SendToJournal(fields, message, level)) return;
  SendToSpdlog(fields, message, level);
}

}  // namespace cordon::daemon::journal
