// Forks the trainer from the sandbox init and execs it with every privilege dropped.
//
// Everything the child needs is prepared before fork (TrainerLaunch). Between fork and exec the
// child only makes raw system calls: no allocation, no locks, no logging. A failing step writes
// {step, errno} to a CLOEXEC pipe and _exits; the parent reads EOF when exec succeeded.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cordon/error.h"
#include "seccomp_policy.h"

namespace cordon::sandbox {

struct TrainerLaunch {
  std::string exec_path;             // resolved inside the sandbox before fork
  std::vector<std::string> argv, envp;
  uid_t uid = 65534;
  gid_t gid = 65534;
  int stdin_fd = -1, stdout_fd = 1, stderr_fd = 2;
  std::uint64_t nproc_limit = 0;     // RLIMIT_NPROC; 0 = leave
  std::uint64_t as_limit = 0;        // RLIMIT_AS (only when no memory cgroup)
  std::uint64_t cpu_seconds = 0;     // RLIMIT_CPU
  const SeccompProgram* seccomp = nullptr;
};

struct Trainer {
  pid_t pid = -1;
  int listener_socket = -1;  // receives the seccomp listener fd (SCM_RIGHTS); owned by caller
  int error_pipe = -1;       // EOF on exec; else a ChildFailure; owned by caller
};

struct ChildFailure {
  std::int32_t step;  // index into kChildSteps
  std::int32_t err;
};
[[nodiscard]] const char* ChildStepName(std::int32_t step);

// One fd over an AF_UNIX socket (SCM_RIGHTS, one data byte). SendFd makes raw system calls
// only (safe between fork and exec); ReceiveFd returns the fd (close-on-exec) or -1.
[[nodiscard]] bool SendFd(int socket_fd, int fd);
[[nodiscard]] int ReceiveFd(int socket_fd);
inline constexpr std::int32_t kChildStepExec = 9;

// PATH lookup of argv[0] as root inside the sandbox; absolute or relative paths are kept.
[[nodiscard]] Result<std::string> ResolveExecutable(const std::string& name, const std::string& path);

[[nodiscard]] Result<Trainer> ForkTrainer(const TrainerLaunch& launch);

// Why execve(path) failed with err, naming what is missing: "/job/bin/train: interpreter
// /opt/venv/bin/python3 not found", the ELF loader of a dynamically linked program, an empty
// "#!" line. Looked at with the trainer's file system ids (uid, gid), inside the sandbox.
[[nodiscard]] std::string DescribeExecFailure(const std::string& path, int err, uid_t uid, gid_t gid);

}  // namespace cordon::sandbox
