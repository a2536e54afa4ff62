// cordond's job supervisor: each job's `cordon run` child, started with
// posix_spawn in its own session and awaited through a pidfd registered with
// the event loop (no SIGCHLD handler; signals go through the pidfd, so a
// reused pid is never hit). The runner's stdout (its JSON report) is read
// into memory, bounded; its stderr goes to a file in the job's state dir.
#pragma once

#include <sys/types.h>

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it
#include <boost/asio.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cordon/error.h"

namespace cordon::daemon {

// posix_spawn with stdin /dev/null, stdout `stdout_fd`, stderr `stderr_path`
// (truncated, 0600), default signal dispositions and an empty mask. `pass_fds`
// stay open in the child under the same numbers (everything else the daemon
// holds is close-on-exec). `setsid`: the child leads its own session, so a
// survivor can be killed with its whole process group after a crash.
struct SpawnSpec {
  std::vector<std::string> argv;
  int stdin_fd = -1;  // -1: /dev/null
  int stdout_fd = -1;
  std::string stderr_path = "/dev/null";
  std::vector<int> pass_fds;
  bool setsid = false;
};
[[nodiscard]] Result<pid_t> Spawn(const SpawnSpec& spec);

// A pidfd for `pid` (owned by the caller), or -1.
[[nodiscard]] int PidfdOpen(pid_t pid);

struct RunnerExit {
  std::string job_id;
  std::string report;    // what the runner printed (its --json report), at most 4 MiB
  int wait_status = 0;   // as from waitpid(2)
  bool cancel_requested = false;
};

class Supervisor final {
 public:
  using OnExit = std::function<void(RunnerExit)>;
  Supervisor(boost::asio::io_context& io, OnExit on_exit) : io_(io), on_exit_(std::move(on_exit)) {}

  // Starts `spec` (its stdout is replaced by a pipe to us) for `job_id`.
  [[nodiscard]] Result<pid_t> Start(const std::string& job_id, SpawnSpec spec);
  // SIGTERM (or `sig`) to the job's runner; false when it is not running.
  bool Signal(const std::string& job_id, int sig, bool as_cancel);
  void SignalAll(int sig, bool as_cancel);
  [[nodiscard]] bool Running(const std::string& job_id) const { return jobs_.count(job_id) != 0; }
  [[nodiscard]] std::size_t size() const { return jobs_.size(); }
  [[nodiscard]] std::vector<std::string> JobIds() const;

 private:
  struct Job;
  void ReadOutput(const std::shared_ptr<Job>& job);
  void Reaped(const std::shared_ptr<Job>& job);
  void Finish(const std::shared_ptr<Job>& job);

  boost::asio::io_context& io_;
  OnExit on_exit_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
};

}  // namespace cordon::daemon
