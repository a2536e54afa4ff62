#include <utility>

#include "admin_ops.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <memory>

#include "cordon/unique_fd.h"
#include "supervisor.h"

namespace cordon::daemon {
namespace {

namespace asio = boost::asio;

struct Run {
  explicit Run(asio::io_context& io) : out(io), err(io), pidfd(io), limit(io) {}
  asio::posix::stream_descriptor out, err, pidfd;
  asio::steady_timer limit;
  pid_t pid = 0;
  int open_streams = 2;
  AdminResult result;
  std::array<char, 65536> buffer_out{}, buffer_err{};
  std::function<void(AdminResult)> done;
};

void Append(std::string& to, const char* data, std::size_t n) {
  if (to.size() >= kMaxAdminOutput) return;
  to.append(data, std::min(n, kMaxAdminOutput - to.size()));
  if (to.size() >= kMaxAdminOutput) to += "\n[truncated]\n";
}

void Finish(const std::shared_ptr<Run>& run) {
  run->pidfd.async_wait(asio::posix::stream_descriptor::wait_read, [run](boost::system::error_code) {
    run->limit.cancel();
    const int status = WaitChild(run->pid).value_or(0);
    run->result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run->done(std::move(run->result));
  });
}

void ReadMore(const std::shared_ptr<Run>& run, bool is_err) {
  auto& stream = is_err ? run->err : run->out;
  auto& buffer = is_err ? run->buffer_err : run->buffer_out;
  stream.async_read_some(asio::buffer(buffer), [run, is_err](boost::system::error_code ec, std::size_t n) {
    if (!ec) {
      Append(is_err ? run->result.err : run->result.out, (is_err ? run->buffer_err : run->buffer_out).data(), n);
      return ReadMore(run, is_err);
    }
    if (--run->open_streams == 0) Finish(run);
  });
}

}  // namespace

bool RunAdminCommand(asio::io_context& io, const std::string& cordon_bin, const std::string& config,
                     const std::vector<std::string>& argv, uid_t caller, std::function<void(AdminResult)> done) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return false;
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return false;
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  SpawnOptions spec;
  spec.argv = {cordon_bin, "--config", config};
  spec.argv.insert(spec.argv.end(), argv.begin(), argv.end());
  spec.argv.insert(spec.argv.end(), {"--caller-uid", std::to_string(caller)});
  spec.stdout_fd = out_write.get();
  spec.stderr_path = "/dev/fd/" + std::to_string(err_write.get());
  spec.pass_fds = {err_write.get()};
  spec.setsid = true;
  auto child = Spawn(spec);
  if (!child) return false;
  out_write.reset();
  err_write.reset();
  auto run = std::make_shared<Run>(io);
  run->pid = child->pid;
  run->done = std::move(done);
  run->out.assign(out_read.release());
  run->err.assign(err_read.release());
  run->pidfd.assign(child->pidfd.release());
  run->limit.expires_after(kAdminTimeout);
  run->limit.async_wait([pid = child->pid](boost::system::error_code ec) {
    if (!ec) ::kill(-pid, SIGKILL);
  });
  ReadMore(run, false);
  ReadMore(run, true);
  return true;
}

}  // namespace cordon::daemon
