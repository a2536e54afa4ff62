#include "trainer_exec.h"

#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cordon::sandbox {
namespace {

constexpr const char* kChildSteps[] = {
    "reset-signals", "setsid", "install-stdio", "close-fds", "oom-score", "securebits",
    "drop-bounding-caps", "set-ids", "drop-caps", "exec", "rlimits", "no-new-privs",
    "seccomp-load", "seccomp-listener-handoff", "chdir"};
enum ChildStep : std::int32_t {
  kResetSignals, kSetsid, kStdio, kCloseFds, kOomScore, kSecurebits, kBounding, kSetIds,
  kDropCaps, kExec, kRlimits, kNoNewPrivs, kSeccompLoad, kListenerHandoff, kChdir,
};
static_assert(kExec == kChildStepExec);

[[noreturn]] void Die(int pipe_fd, ChildStep step) {
  const ChildFailure f{step, errno};
  (void)!write(pipe_fd, &f, sizeof(f));
  _exit(125);
}

bool InstallStdio(int in, int out, int err) {
  // Lift all three above 2 first, so dup2 cannot clobber one with another.
  const int src[3] = {in, out, err};
  int high[3];
  for (int i = 0; i < 3; ++i) {
    high[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
    if (high[i] < 0) return false;
  }
  for (int i = 0; i < 3; ++i) {
    if (dup2(high[i], i) < 0) return false;
  }
  return true;
}

bool SetRlimit(int resource, std::uint64_t value) {
  const rlimit rl{value, value};
  return setrlimit(resource, &rl) == 0;
}

bool ApplyRlimits(const TrainerLaunch& l) {
  if (!SetRlimit(RLIMIT_CORE, 0)) return false;
  if (!SetRlimit(RLIMIT_NOFILE, 4096)) return false;
  if (l.nproc_limit != 0 && !SetRlimit(RLIMIT_NPROC, l.nproc_limit)) return false;
  if (l.as_limit != 0 && !SetRlimit(RLIMIT_AS, l.as_limit)) return false;
  if (l.cpu_seconds != 0 && !SetRlimit(RLIMIT_CPU, l.cpu_seconds)) return false;
  return true;
}

bool LockSecurebits() {
  // No root magic, no keep-caps, no ambient raising — all locked. NO_SETUID_FIXUP stays off
  // (locked off) so the uid change below clears the permitted and effective sets.
  const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED |
                             SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                             SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
  return prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) == 0;
}

bool DropBounding() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return false;
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return false;
  }
  return true;
}

bool DropAllCaps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  return syscall(SYS_capset, &header, data) == 0;
}

bool ResetSignals() {
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return false;
  // exec resets handled signals to SIG_DFL but keeps ignored ones ignored: undo any SIG_IGN a
  // caller may have left (SIGPIPE, SIGCHLD...) on the classic signals.
  for (int sig = 1; sig < 32; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, SIG_DFL);
  }
  return true;
}

// The child: only raw system calls from here to exec.
[[noreturn]] void RunChild(const TrainerLaunch& l, char* const* argv, char* const* envp,
                           int error_fd, int socket_fd) {
  if (!ResetSignals()) Die(error_fd, kResetSignals);
  if (setsid() < 0) Die(error_fd, kSetsid);
  if (!InstallStdio(l.stdin_fd, l.stdout_fd, l.stderr_fd)) Die(error_fd, kStdio);
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) Die(error_fd, kCloseFds);
  const int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom < 0 || write(oom, "1000", 4) != 4) Die(error_fd, kOomScore);
  close(oom);
  if (!LockSecurebits()) Die(error_fd, kSecurebits);
  if (!DropBounding()) Die(error_fd, kBounding);
  if (setgroups(0, nullptr) != 0 || setresgid(l.gid, l.gid, l.gid) != 0 ||
      setresuid(l.uid, l.uid, l.uid) != 0) {
    Die(error_fd, kSetIds);
  }
  if (!DropAllCaps()) Die(error_fd, kDropCaps);
  if (!ApplyRlimits(l)) Die(error_fd, kRlimits);
  umask(077);
  if (chdir("/tmp") != 0) Die(error_fd, kChdir);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Die(error_fd, kNoNewPrivs);
  const long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                SECCOMP_FILTER_FLAG_NEW_LISTENER, &l.seccomp->prog);
  if (listener < 0) Die(error_fd, kSeccompLoad);
  if (!SendFd(socket_fd, static_cast<int>(listener))) Die(error_fd, kListenerHandoff);
  close(static_cast<int>(listener));
  close(socket_fd);
  execve(l.exec_path.c_str(), argv, envp);
  Die(error_fd, kExec);
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

namespace {

// One data byte and room for one SCM_RIGHTS fd; on the stack, no allocation (SendFd runs between
// fork and exec).
struct FdMessage {
  char byte = 'L';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
};

}  // namespace

bool SendFd(int socket_fd, int fd) {
  FdMessage m;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(socket_fd, &m.msg, MSG_NOSIGNAL) == 1;
}

int ReceiveFd(int socket_fd) {
  FdMessage m;
  if (recvmsg(socket_fd, &m.msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  if (c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

const char* ChildStepName(std::int32_t step) {
  if (step < 0 || step >= static_cast<std::int32_t>(std::size(kChildSteps))) return "unknown";
  return kChildSteps[step];
}

Result<std::string> ResolveExecutable(const std::string& name, const std::string& path) {
  if (name.empty()) return Fail(Errc::kInvalidArgument, "empty command");
  if (name.find('/') != std::string::npos) return name;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(start, end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) {
      return candidate;
    }
    start = end + 1;
  }
  return Fail(Errc::kNotFound, name + ": command not found in PATH=" + path);
}

namespace {

// The path in a "#!" line, or the PT_INTERP of an ELF program; "" when there is none.
std::string InterpreterOf(int fd, const char* head, std::size_t n) {
  if (n >= 2 && head[0] == '#' && head[1] == '!') {
    std::size_t i = 2;
    while (i < n && (head[i] == ' ' || head[i] == '\t')) ++i;
    std::size_t end = i;
    while (end < n && head[end] != ' ' && head[end] != '\t' && head[end] != '\n' && head[end] != '\r') ++end;
    return std::string(head + i, end - i);
  }
  Elf64_Ehdr eh;
  if (n < sizeof(eh) || std::memcmp(head, ELFMAG, SELFMAG) != 0 || head[EI_CLASS] != ELFCLASS64) return "";
  std::memcpy(&eh, head, sizeof(eh));
  for (unsigned i = 0; i < eh.e_phnum && i < 256; ++i) {
    Elf64_Phdr ph;
    const auto at = static_cast<off_t>(eh.e_phoff + static_cast<std::uint64_t>(i) * eh.e_phentsize);
    if (eh.e_phentsize < sizeof(ph) || pread(fd, &ph, sizeof(ph), at) != static_cast<ssize_t>(sizeof(ph))) break;
    if (ph.p_type != PT_INTERP) continue;
    char interp[256] = {};
    const std::size_t len = std::min<std::uint64_t>(ph.p_filesz, sizeof(interp) - 1);
    if (pread(fd, interp, len, static_cast<off_t>(ph.p_offset)) != static_cast<ssize_t>(len)) break;
    return std::string(interp, strnlen(interp, len));
  }
  return "";
}

}  // namespace

std::string DescribeExecFailure(const std::string& path, int err, uid_t uid, gid_t gid) {
  const std::string plain = path + ": " + std::strerror(err);
  if (err != ENOENT && err != ENOEXEC && err != EACCES && err != ELIBBAD) return plain;
  // As the trainer would see it: the file system ids of the trainer, never root's.
  const int old_gid = setfsgid(gid), old_uid = setfsuid(uid);
  std::string message = plain;
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  struct stat st {};
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    char head[512];
    const ssize_t n = pread(fd, head, sizeof(head), 0);
    const std::string interp = n > 0 ? InterpreterOf(fd, head, static_cast<std::size_t>(n)) : "";
    const bool script = n >= 2 && head[0] == '#' && head[1] == '!';
    const char* what = script ? "interpreter " : "ELF interpreter (dynamic loader) ";
    struct stat ist {};
    if (script && interp.empty()) {
      message = path + ": empty #! line";
    } else if (!interp.empty() && stat(interp.c_str(), &ist) != 0) {
      message = path + ": " + what + interp + (errno == ENOENT ? " not found" : std::string(": ") + std::strerror(errno));
    } else if (!interp.empty() && (!S_ISREG(ist.st_mode) || access(interp.c_str(), X_OK) != 0)) {
      message = path + ": " + what + interp + " is not executable";
    } else if (err == ENOEXEC) {
      message = path + ": not a program (no #! line, not an ELF executable of this architecture)";
    }
  }
  if (fd >= 0) close(fd);
  setfsuid(static_cast<uid_t>(old_uid));
  setfsgid(static_cast<gid_t>(old_gid));
  return message;
}

Result<Trainer> ForkTrainer(const TrainerLaunch& launch) {
  int pipe_fds[2], sock[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return FailErrno("trainer error pipe");
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) != 0) {
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return FailErrno("seccomp listener socketpair");
  }
  std::vector<char*> argv = CStrings(launch.argv), envp = CStrings(launch.envp);
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    close(sock[0]);
    RunChild(launch, argv.data(), envp.data(), pipe_fds[1], sock[1]);
  }
  const int err = errno;
  close(pipe_fds[1]);
  close(sock[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    close(sock[0]);
    return FailErrno("fork trainer", err);
  }
  return Trainer{pid, sock[0], pipe_fds[0]};
}

}  // namespace cordon::sandbox
