#include "supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>

#include "cordon/unique_fd.h"

extern char** environ;

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kMaxRunnerOutput = 4 << 20;

int PidfdSignal(int fd, int sig) { return static_cast<int>(::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0)); }

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

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

Result<pid_t> Spawn(const SpawnSpec& spec) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (spec.stdin_fd >= 0) posix_spawn_file_actions_adddup2(&fa, spec.stdin_fd, 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, spec.stdout_fd, 1);
  posix_spawn_file_actions_addopen(&fa, 2, spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // dup2 onto itself clears FD_CLOEXEC in the child (glibc >= 2.29, POSIX 2024).
  for (const int fd : spec.pass_fds) posix_spawn_file_actions_adddup2(&fa, fd, fd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  const short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (spec.setsid ? POSIX_SPAWN_SETSID : 0);
  posix_spawnattr_setflags(&attr, flags);
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return FailErrno("cannot start " + spec.argv[0], rc);
  return pid;
}

Result<pid_t> Supervisor::Start(const std::string& job_id, SpawnSpec spec) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return FailErrno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  spec.stdout_fd = write_end.get();
  auto pid = Spawn(spec);
  if (!pid) return pid;
  write_end.reset();
  auto job = std::make_shared<Job>();
  job->job_id = job_id;
  job->pid = *pid;
  job->pidfd = std::make_unique<asio::posix::stream_descriptor>(io_, PidfdOpen(*pid));
  job->out = std::make_unique<asio::posix::stream_descriptor>(io_, read_end.release());
  jobs_[job_id] = job;
  ReadOutput(job);
  job->pidfd->async_wait(asio::posix::stream_descriptor::wait_read, [this, job](boost::system::error_code ec) {
    if (!ec) Reaped(job);
  });
  return pid;
}

bool Supervisor::Signal(const std::string& job_id, int sig, bool as_cancel) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  it->second->cancel_requested = it->second->cancel_requested || as_cancel;
  PidfdSignal(it->second->pidfd->native_handle(), sig);
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
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(job->pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (got != job->pid) return;
  job->exited = true;
  job->wait_status = status;
  if (job->out_done) Finish(job);
}

void Supervisor::Finish(const std::shared_ptr<Job>& job) {
  if (job->finished) return;
  job->finished = true;
  jobs_.erase(job->job_id);
  on_exit_(RunnerExit{job->job_id, std::move(job->output), job->wait_status, job->cancel_requested});
}

}  // namespace cordon::daemon
