#include "supervisor.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>

#include "cordon/unique_fd.h"

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kMaxRunnerOutput = 4 << 20;

}  // namespace

struct Supervisor::Job {
  std::string job_id;
  pid_t pid = 0;
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;
  std::unique_ptr<asio::posix::stream_descriptor> out;
  std::string output;
  std::array<char, 8192> buf{};
  bool exited = false, out_done = false, cancel_requested = false, finished = false;
  int wait_status = 0;
};

Result<pid_t> Supervisor::Start(const std::string& job_id, SpawnOptions spec) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return FailErrno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  spec.stdout_fd = write_end.get();
  auto child = Spawn(spec);
  if (!child) return std::unexpected(child.error());
  write_end.reset();
  auto job = std::make_shared<Job>();
  job->job_id = job_id;
  job->pid = child->pid;
  job->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, child->pidfd.release());
  job->out = std::make_unique<asio::posix::stream_descriptor>(io_, read_end.release());
  jobs_[job_id] = job;
  ReadOutput(job);
  job->pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [this, job](boost::system::error_code ec) {
    if (!ec) Reaped(job);
  });
  return job->pid;
}

bool Supervisor::Signal(const std::string& job_id, int sig, bool as_cancel) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  it->second->cancel_requested = it->second->cancel_requested || as_cancel;
  (void)PidfdSignal(it->second->pidfd->native_handle(), sig);
  return true;
}

void Supervisor::SignalAll(int sig, bool as_cancel) {
  for (const auto& id : JobIds()) Signal(id, sig, as_cancel);
}

std::vector<std::string> Supervisor::JobIds() const {
  std::vector<std::string> ids;
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  return ids;
}

void Supervisor::ReadOutput(const std::shared_ptr<Job>& job) {
  job->out->async_read_some(asio::buffer(job->buf), [this, job](boost::system::error_code ec, std::size_t n) {
    if (!ec && job->output.size() + n <= kMaxRunnerOutput) {
      job->output.append(job->buf.data(), n);
      return ReadOutput(job);
    }
    job->out_done = true;
    boost::system::error_code ignored;
    job->out->close(ignored);  // never leave the runner blocked on a full pipe
    if (job->exited) Finish(job);
  });
}

void Supervisor::Reaped(const std::shared_ptr<Job>& job) {
  auto status = WaitChild(job->pid);
  if (!status) return;
  job->exited = true;
  job->wait_status = *status;
  if (job->out_done) Finish(job);
}

void Supervisor::Finish(const std::shared_ptr<Job>& job) {
  if (job->finished) return;
  job->finished = true;
  jobs_.erase(job->job_id);
  on_exit_(RunnerExit{job->job_id, std::move(job->output), job->wait_status, job->cancel_requested});
}

}  // namespace cordon::daemon
