#include "cordon/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cordon/file_io.h"

extern char** environ;

namespace cordon {
namespace {

// posix_spawn's file actions and attributes, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

Status Check(int rc, const std::string& what, const SpawnOptions& options) {
  if (rc == 0) return {};
  return FailErrno("cannot start " + options.argv[0] + ": " + what, rc);
}

Status AddFileActions(posix_spawn_file_actions_t& fa, const SpawnOptions& o) {
  if (auto s = o.stdin_fd >= 0 ? Check(posix_spawn_file_actions_adddup2(&fa, o.stdin_fd, 0), "dup2 stdin", o)
                               : Check(posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0), "open stdin", o);
      !s) {
    return s;
  }
  if (auto s = o.stdout_fd >= 0 ? Check(posix_spawn_file_actions_adddup2(&fa, o.stdout_fd, 1), "dup2 stdout", o)
                                : Check(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), "open stdout", o);
      !s) {
    return s;
  }
  if (auto s = Check(posix_spawn_file_actions_addopen(&fa, 2, o.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600),
                     "open stderr " + o.stderr_path, o);
      !s) {
    return s;
  }
  // dup2 onto itself clears FD_CLOEXEC in the child (glibc >= 2.29, POSIX 2024).
  for (const int fd : o.pass_fds) {
    if (auto s = Check(posix_spawn_file_actions_adddup2(&fa, fd, fd), "pass fd " + std::to_string(fd), o); !s) return s;
  }
  return {};
}

Status SetAttributes(posix_spawnattr_t& attr, const SpawnOptions& o) {
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP}) sigaddset(&defaults, sig);
  const short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (o.setsid ? POSIX_SPAWN_SETSID : 0);
  if (auto s = Check(posix_spawnattr_setsigmask(&attr, &none), "signal mask", o); !s) return s;
  if (auto s = Check(posix_spawnattr_setsigdefault(&attr, &defaults), "default signals", o); !s) return s;
  return Check(posix_spawnattr_setflags(&attr, flags), "spawn flags", o);
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::uint64_t ProcessStartTime(pid_t pid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  char buf[1024];
  const ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf - 1) : -1;
  if (n <= 0) return 0;
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and ')': fields resume after the last ')'.
  const char* p = std::strrchr(buf, ')');
  for (int field = 2; p && field < 22; ++field) p = std::strchr(p + 1, ' ');
  return p ? std::strtoull(p + 1, nullptr, 10) : 0;
}

Result<Child> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return Fail(Errc::kInternal, "Spawn: no program given");
  SpawnSetup setup;
  if (auto s = AddFileActions(setup.actions, options); !s) return std::unexpected(s.error());
  if (auto s = SetAttributes(setup.attr, options); !s) return std::unexpected(s.error());
  std::vector<std::string> args = options.argv;
  std::vector<std::string> env = options.env.value_or(std::vector<std::string>{});
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp = Pointers(env);
  Child child;
  const int rc = ::posix_spawn(&child.pid, argv[0], &setup.actions, &setup.attr, argv.data(),
                               options.env ? envp.data() : environ);
  if (rc != 0) return FailErrno("cannot start " + options.argv[0], rc);
  // Not yet reaped (only the caller reaps it), so the pid cannot have been reused.
  child.pidfd.reset(PidfdOpen(child.pid));
  if (!child.pidfd) {
    const int err = errno;
    ::kill(child.pid, SIGKILL);
    (void)WaitChild(child.pid);
    return FailErrno("pidfd_open for " + options.argv[0], err);
  }
  return child;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

Status PidfdSignal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return {};
  return FailErrno("pidfd_send_signal");
}

Result<int> WaitChild(pid_t pid, int options) {
  int status = 0;
  const pid_t got = RetryEintr([&] { return ::waitpid(pid, &status, options); });
  if (got < 0) return FailErrno("waitpid " + std::to_string(pid));
  if (got != pid) return Fail(Errc::kIo, "waitpid " + std::to_string(pid) + ": the child has not exited");
  return status;
}

}  // namespace cordon
