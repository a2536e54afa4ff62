// cordond's job supervisor: each job's `cordon run` child, started with
// cordon::Spawn (cordon/process.h) in its own session and awaited through a pidfd registered with
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
#include "cordon/process.h"

namespace cordon::daemon {

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
  [[nodiscard]] Result<pid_t> Start(const std::string& job_id, SpawnOptions spec);
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
